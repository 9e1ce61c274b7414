"""Encode-time choices among candidate files by quick F: surface samplings, completion, and models."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

from vatcodec.codec.models import prior_of

if TYPE_CHECKING:
    from vatcodec.model.tokenizer import VAT


@dataclasses.dataclass
class FirstFile:
    """Effort 0's file of one encoding: its indices, the largest whole-scale prefix that fits (`top`) and its
    bytes, and, when a budget cuts the stream and the context coder fills it (`completes`), the cut stream."""

    indices: list
    top: int
    data: bytes
    completes: bool
    idx_cut: list | None = None
    cut_data: bytes | None = None

    def stream(self) -> tuple[list, bytes]:
        """The indices and bytes effort 0 writes: the cut stream when there is one, else the whole scales."""
        if self.idx_cut is not None:
            return self.idx_cut, self.cut_data
        return self.indices[: self.top], self.data


def best_try(
    net: VAT, mesh_unit, first: FirstFile, mu_1KC, encoded, first_file, tries: int, deadline, cut, progress
):
    """Of `tries` samplings of the surface (seeds seed .. seed + tries - 1), the one whose file decodes best.

    The encoder's tokens depend on which surface points it sees, and the decoded F-score varies with them by about
    0.02 per mesh (33 validation meshes): picking the best of 8 by quick F-score lifts the mean by as much
    (docs/tokenizer.md, "Session 17"). The file needs nothing more to decode; ties keep the earlier seed. Past
    `deadline` no further try starts.
    """
    from vatcodec.codec.quick_score import QuickScorer

    score = QuickScorer(mesh_unit)  # the input's index is built once for all tries

    def scored(f: FirstFile) -> float:
        idx_L, _ = f.stream()
        return score.at_levels(net, idx_L, f.idx_cut is not None)(0.0)

    best, best_mu, best_score = first, mu_1KC, scored(first)
    for k in range(1, tries):
        if deadline is not None and time.monotonic() >= deadline:
            cut.append(f"tries: {k} of {tries}")
            break
        if progress is not None:
            progress(k / tries, f"try {k + 1} of {tries}")
        indices, mu = encoded(k)
        f = first_file(indices)
        s = scored(f)
        if s > best_score:
            best, best_mu, best_score = f, mu, s
    return best, best_mu


def best_completion(net: VAT, mesh_unit, plain: list, idx_cut: list | None, fits) -> tuple[list, bool]:
    """The refined whole-scale stream, the same completed, or effort 0's cut stream: the best by quick F-score.

    Refinement optimizes a whole-scale prefix without completion, so completing it is not always better; effort 0's
    cut stream is a candidate so that a higher effort never scores below effort 0's file. Ties keep the first.
    """
    from vatcodec.codec.completion import in_coding_order
    from vatcodec.codec.quick_score import QuickScorer

    candidates = [(plain, False)]
    with prior_of(net).reusing_rows():  # ordering and packing `whole` share one run of the prior
        whole = in_coding_order(net, plain)
        if fits(whole):
            candidates.append((whole, True))
    if idx_cut is not None:
        candidates.append((idx_cut, True))
    score = QuickScorer(mesh_unit)
    scores = [score.at_levels(net, idx_L, completed)(0.0) for idx_L, completed in candidates]
    return candidates[max(range(len(candidates)), key=lambda i: (scores[i], -i))]


def best_model_file(mesh, models: list, encode_with, device: str | None = None) -> bytes:
    """The file, among one per model (`encode_with(model)`), whose decode has the best quick F against `mesh`.

    A file names its model, so any decoder holding the chosen model reads it. Models differ per mesh by far more
    than their means (vat-tp2 and vat-tp2q: 0.15 F per mesh, 0.551 against 0.544 on the test split), so the pick
    gains where neither model does (0.589, docs/tokenizer.md "Session 17"). Ties keep the first model; an
    alternative that cannot write the file (a budget below its one-scale file) is skipped.
    """
    from vatcodec.codec.bitstream import level_offset
    from vatcodec.codec.decoding import unpack_for
    from vatcodec.codec.models import resolve_model
    from vatcodec.codec.quick_score import QuickScorer
    from vatcodec.errors import VatError
    from vatcodec.geometry.mesh_io import normalize_mesh

    score = QuickScorer(normalize_mesh(mesh)[0])
    best, best_score = None, -1.0
    for i, m in enumerate(models):
        try:
            data = encode_with(m)
        except VatError:
            if i == 0:
                raise
            continue
        net = resolve_model(m, device)
        vat = unpack_for(data, net)
        s = score.at_levels(net, vat.indices, vat.completed)(level_offset(vat))
        if s > best_score:
            best, best_score = data, s
    return best
