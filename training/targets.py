"""Fitted-latent targets (written by training.fit_latents) lined up with a training cache, for encoder regression.

The issue's auto-decoder idea with the decoder already trained: `fit_latents` moves each training shape's latent
through the frozen decoder; training then pulls the encoder's mu toward that fit (`--targets DIR --w-target W`),
so the encoder learns in one regression step what refinement finds per shape (`--effort`, `latent_fit.py`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open


def load_targets(
    folder: str | Path, names: list[str], shape_KC: tuple[int, int] | None = None, key: str = "fit"
) -> torch.Tensor:
    """The fitted latents of `names`, in that order: (S, K, C). A name without a fit, or a fit of another
    shape than `shape_KC` (the model's latent), is an error."""
    folder = Path(folder)
    files = sorted(folder.glob("fit-*.safetensors"))
    if not files:
        raise ValueError(f"{folder}: no fit-*.safetensors files (write them with training.fit_latents)")
    by_name: dict[str, torch.Tensor] = {}
    for f in files:
        with safe_open(str(f), "pt") as h:
            chunk_names = json.loads(h.metadata()["names"])
            latents_SKC = h.get_tensor(key)
        by_name.update(zip(chunk_names, latents_SKC, strict=True))
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValueError(
            f"{folder}: {len(missing)} of {len(names)} training shapes have no fitted latent "
            f"({missing[0]}, ...): finish training.fit_latents first"
        )
    out_SKC = torch.stack([by_name[n] for n in names]).float()
    if shape_KC is not None and tuple(out_SKC.shape[1:]) != tuple(shape_KC):
        raise ValueError(
            f"{folder}: fitted latents are {tuple(out_SKC.shape[1:])}, this model's latent is {tuple(shape_KC)}"
        )
    return out_SKC
