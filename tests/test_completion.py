"""Cut streams and their completion (coder 4): a scale cut in the prior's order, filled with expected codes."""

import dataclasses

import numpy as np
import pytest
import torch

from tests.conftest import indices_of, tiny_model
from tests.test_generator import tiny_generator
from vatcodec.codec.context import coding_order, expected_codes
from vatcodec.codec.models import prior_of
from vatcodec.errors import BitstreamError


def test_decoding_codes_equals_decoding_their_indices(tok):
    """The soft-token path (`decode_codes`, `next_input` of codes) is the index path when the codes are rows."""
    g = torch.Generator().manual_seed(0)
    idx = [torch.randint(0, tok.cfg.codebook_size, (1, n), generator=g) for n in tiny_generator(tok).counts]
    rows = [tok.vq.codebook(i) for i in idx]
    with torch.no_grad():
        assert torch.equal(tok.vq.decode(idx), tok.vq.decode_codes(rows))
        pts = torch.rand(1, 50, 3) - 0.5
        assert torch.equal(tok.decode(idx)(pts), tok.decode_codes(rows)(pts))
        a, na = tok.vq.next_input(0, 0.0, idx[0])
        b, nb = tok.vq.next_input(0, 0.0, rows[0])
    assert torch.equal(a, b) and torch.equal(na, nb)


def test_the_coding_order_puts_the_least_confident_rows_first():
    freq = np.array([[5, 3], [7, 1], [4, 4], [6, 2], [5, 3]])
    order = coding_order(freq)
    assert order.tolist() == [2, 0, 4, 3, 1]  # largest frequency 4, 5, 5 (ties by position), 6, 7


def test_a_cut_scale_round_trips_in_coding_order(prior, tok):
    idx_L = indices_of(tok, prior, 0)
    order = coding_order(prior.rows(idx_L)[-1])
    assert sorted(order.tolist()) == list(range(len(idx_L[-1])))
    for k in (1, 5, len(idx_L[-1])):
        cut = [*idx_L[:-1], idx_L[-1][order[:k]]]
        segments = prior.encode(cut, cut=True)
        assert segments[:-1] == prior.encode(idx_L)[:-1]  # whole scales code as coder 3 does
        back = prior.decode(segments, cut=k)
        assert all(np.array_equal(a, b) for a, b in zip(back, cut, strict=True))
    with pytest.raises(BitstreamError, match="prefix"):
        prior.encode([*idx_L[:-1], idx_L[-1][:0]], cut=True)  # a cut scale keeps at least one token


def test_completion_keeps_the_tokens_and_fills_the_rest_with_expected_codes(prior, tok):
    idx_L = indices_of(tok, prior, 1)
    book = prior.gen.vq.codebook.weight.detach().numpy()
    codes = prior.complete(idx_L[:2])
    assert [len(c) for c in codes] == prior.counts
    assert np.array_equal(codes[0], book[idx_L[0]]) and np.array_equal(codes[1], book[idx_L[1]])
    assert np.allclose(codes[2], expected_codes(prior.rows(idx_L[:3])[-1], book))
    # A cut scale: its tokens where the coding order puts them, expected codes elsewhere.
    rows = prior.rows(idx_L[:2])[-1]
    order = coding_order(rows)
    kept = order[:3]
    codes = prior.complete([idx_L[0], idx_L[1][kept]], cut=True)
    assert np.array_equal(codes[1][kept], book[idx_L[1][kept]])
    rest = np.setdiff1d(np.arange(len(rows)), kept)
    assert np.allclose(codes[1][rest], expected_codes(rows, book)[rest])
    # Every token given: nothing left to complete.
    full = prior.complete(idx_L)
    assert all(np.array_equal(c, book[i]) for c, i in zip(full, idx_L, strict=True))


def test_row_reuse_is_scoped(prior, tok):
    idx_L = indices_of(tok, prior, 2)
    with prior.reusing_rows():
        a = prior.rows(idx_L)
        assert prior.rows(idx_L) is a
        with prior.reusing_rows():  # a nested block shares the rows and leaves them to the outer one
            assert prior.rows(idx_L) is a
        assert prior.rows(idx_L) is a
        # A shorter prefix of the same indices takes its rows from that run, and they are what its own run gives.
        short = prior.rows(idx_L[:2])
        assert len(short) == 2 and all(x is y for x, y in zip(short, a, strict=False))
    assert all(np.array_equal(x, y) for x, y in zip(prior.rows(idx_L[:2]), short, strict=True))
    assert prior.rows(idx_L) is not a and all(
        np.array_equal(x, y) for x, y in zip(prior.rows(idx_L), a, strict=True)
    )


# --- coder 4 of the .vat format ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def net(prior):
    from vatcodec.codec.models import set_prior

    return set_prior(tiny_model(), prior)


@pytest.fixture(scope="module")
def torus():
    import trimesh

    return trimesh.creation.torus(1.0, 0.3, major_sections=24, minor_sections=12)


@pytest.fixture(scope="module")
def cut(net, torus):
    """The torus's files of 2 and 3 whole scales, a budget halfway between them, and its cut file."""
    from vatcodec import codec

    whole = [codec.encode(torus, model=net, coder="context", scales=n) for n in (2, 3)]
    budget = (len(whole[0]) + len(whole[1])) // 2
    return whole, budget, codec.encode(torus, model=net, coder="context", max_bytes=budget)


def test_a_completed_file_is_coder_4_and_round_trips(net, prior, tok):
    from vatcodec.codec.bitstream import VatFile, header_info, pack, unpack

    idx_L = indices_of(tok, prior, 3)
    vat = VatFile(
        model_id=b"\0" * 8, codebook_size=tok.cfg.codebook_size, index_bits=8, schedule=tuple(prior.counts),
        indices=[*idx_L[:2], idx_L[2][:4]], coder="context", completed=True, version=(1, 4),
    )  # fmt: skip
    data = pack(vat, prior=prior)
    assert data[14] == 4 and unpack(data, prior=prior) == vat
    info = header_info(data)
    assert info["completed"] and info["tokens_present"] == sum(prior.counts[:2]) + 4
    with pytest.raises(BitstreamError, match="only the context coder"):
        pack(dataclasses.replace(vat, coder="raw"))
    with pytest.raises(BitstreamError, match="indices, schedule says"):
        pack(dataclasses.replace(vat, indices=[*idx_L[:2], idx_L[2][:0]]), prior=prior)
    with pytest.raises(BitstreamError, match="indices, schedule says"):  # only the last scale may be cut
        pack(dataclasses.replace(vat, indices=[idx_L[0], idx_L[1][:3], idx_L[2][:4]]), prior=prior)


def test_a_budget_between_two_scales_is_filled_to_the_token(net, torus, cut):
    from vatcodec import codec
    from vatcodec.codec.bitstream import header_info

    whole, budget, data = cut
    info = header_info(data)
    assert info["completed"] and len(data) <= budget and info["format"] == "vat 1.4"
    assert sum(prior_of(net).counts[:2]) < info["tokens_present"] < sum(prior_of(net).counts[:3])
    assert (
        codec.encode(torus, model=net, coder="auto", max_bytes=budget) == data
    )  # deterministic, auto agrees
    plain = header_info(codec.encode(torus, model=net, coder="zstd", max_bytes=budget))  # no prior, no cut
    assert not plain.get("completed") and plain["tokens_present"] == sum(
        prior_of(net).counts[: plain["scales_present"]]
    )
    # The file decodes: its cut tokens and the prior's completion, not the plain prefix.
    a = codec.decode(data, model=net, resolution=32)
    b = codec.decode(whole[0], model=net, resolution=32)
    assert len(a.faces) and not (a.vertices.shape == b.vertices.shape and np.allclose(a.vertices, b.vertices))
    # Whole scales only when the user asks for a number of scales.
    assert not header_info(codec.encode(torus, model=net, coder="context", max_bytes=budget, scales=3)).get(
        "completed"
    )


def test_a_corrupt_cut_count_is_a_one_line_error(net, cut):
    from vatcodec.codec.bitstream import header_info, unpack

    data = bytearray(cut[2])
    payload_at = header_info(bytes(data))["header_bytes"] - 4  # header_bytes counts the CRC at the end
    assert data[payload_at + 2] > 0
    data[payload_at + 2] = 0  # the cut count, after the 2-byte index check: 0 tokens is not a cut
    import zlib

    data[-4:] = zlib.crc32(bytes(data[:-4])).to_bytes(4, "little")
    with pytest.raises(BitstreamError, match="token count of cut scale"):
        unpack(bytes(data), prior=prior_of(net))


def test_recoding_a_cut_file(net, cut):
    from vatcodec import codec
    from vatcodec.codec.bitstream import header_info
    from vatcodec.errors import VatError

    whole, _, data = cut
    assert codec.recode(data, model=net) == data  # auto keeps the context coder, the same bytes
    two = codec.recode(data, model=net, scales=2)  # whole scales, still completed
    assert header_info(two)["completed"] and header_info(two)["tokens_present"] == sum(
        prior_of(net).counts[:2]
    )
    a, b = codec.decode(two, model=net, resolution=32), codec.decode(data, model=net, resolution=32, scales=2)
    assert np.array_equal(a.vertices, b.vertices)  # keeping a prefix = decoding a prefix
    with pytest.raises(VatError, match="only the context coder holds"):
        codec.recode(data, model=net, coder="zstd")
    plain = codec.recode(data, model=net, coder="zstd", scales=2)
    assert not header_info(plain).get("completed")
    c = codec.decode(plain, model=net, resolution=32)
    d = codec.decode(whole[0], model=net, resolution=32)
    assert np.array_equal(c.vertices, d.vertices)  # no completion: the plain two-scale decode


def test_effort_1_under_a_budget_never_scores_below_effort_0s_cut_file(net, torus, cut):
    """Effort 1 compares its refined stream, the same completed, and effort 0's cut file by quick F-score."""
    from vatcodec import codec
    from vatcodec.codec.bitstream import level_offset
    from vatcodec.codec.quick_score import QuickScorer
    from vatcodec.geometry.mesh_io import normalize_mesh

    budget = cut[1]
    files = {
        e: codec.encode(torus, model=net, max_bytes=budget, effort=e, time_limit=0, level_search=False)
        for e in (0, 1)
    }
    unit, _ = normalize_mesh(torus)
    score = QuickScorer(unit)

    def quick(data):
        vat = codec.unpack_for(data, net)
        return score.at_levels(net, vat.indices, vat.completed)(level_offset(vat))

    assert all(len(f) <= budget for f in files.values())
    assert quick(files[1]) >= quick(files[0])


def test_reading_and_completing_in_one_run_of_the_prior_changes_nothing(net, cut):
    """`decode` reads a cut file and completes it in one run of the prior; two runs give the same codes."""
    from vatcodec.codec.bitstream import unpack

    data = cut[2]
    prior = prior_of(net)
    vat = unpack(data, prior=prior)
    two_runs = prior.complete(vat.indices, cut=True)
    with prior.reusing_rows():
        again = unpack(data, prior=prior)
        one_run = prior.complete(again.indices, cut=True)
        assert prior.complete(again.indices, cut=True) is one_run  # taken from the reading run
    assert again == vat and all(np.array_equal(a, b) for a, b in zip(one_run, two_runs, strict=True))
