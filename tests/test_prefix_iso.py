"""Per-prefix surface levels (`VATConfig.prefix_iso`): what a prefix decodes, the model id, and export."""

import copy
import dataclasses

import pytest
import torch
from conftest import tiny_model

from vatcodec.codec import model_id_of
from vatcodec.model.checkpoint import load_model, save_checkpoint
from vatcodec.model.config import VATConfig, get_config


def _with_levels(net, prefix_iso):
    other = copy.deepcopy(net)
    other.cfg = dataclasses.replace(net.cfg, prefix_iso=tuple(prefix_iso))
    return other


def test_each_prefix_reports_logits_against_its_own_level():
    net = tiny_model()
    S = len(net.cfg.scales)
    levels = [-1.0 - 0.1 * n for n in range(S - 1)]
    leveled = _with_levels(net, levels)
    g = torch.Generator().manual_seed(0)
    indices = net.encode(torch.randn(1, 64, 6, generator=g))
    points_BM3 = torch.rand(1, 500, 3, generator=g) - 0.5
    for n in range(1, S + 1):
        plain = net.decode(indices[:n])(points_BM3)
        shifted = leveled.decode(indices[:n])(points_BM3)
        want = net.cfg.iso_logit - (levels[n - 1] if n < S else net.cfg.iso_logit)
        torch.testing.assert_close(shifted - plain, torch.full_like(plain, want))


def test_levels_cover_only_the_shorter_prefixes():
    S = len(get_config("vat-tiny").scales)
    assert get_config("vat-tiny", prefix_iso=[0.0] * (S - 1)).prefix_iso == (0.0,) * (
        S - 1
    )  # JSON gives lists
    as_int, as_float = get_config("vat-tiny", prefix_iso=[0]), get_config("vat-tiny", prefix_iso=(0.0,))
    assert as_int.decode_json() == as_float.decode_json() and hash(as_int) == hash(
        as_float
    )  # one id per levels
    with pytest.raises(ValueError, match="1 to"):
        as_int.iso_at(0)
    with pytest.raises(ValueError, match="shorter prefixes"):
        get_config("vat-tiny", prefix_iso=[0.0] * S)


def test_levels_join_the_model_id_only_when_set():
    cfg = get_config("vat-tiny")
    assert "prefix_iso" not in cfg.decode_json()  # ids of models made before the field stay as they were
    net = tiny_model()
    leveled = _with_levels(net, [-0.5])
    assert model_id_of(leveled) != model_id_of(net)
    assert VATConfig.from_json(leveled.cfg.to_json()).prefix_iso == (-0.5,)


def test_export_writes_the_levels(tmp_path):
    from training.export import main

    net = tiny_model()
    src, dst = tmp_path / "run.safetensors", tmp_path / "out.safetensors"
    save_checkpoint(src, net)
    assert main([str(src), str(dst), "--prefix-iso=-1,-0.5"]) == 0
    out = load_model(dst)
    assert out.cfg.prefix_iso == (-1.0, -0.5) and out.cfg.iso_at(1) == -1.0 and out.cfg.iso_at(3) == 0.0
