"""Generator checkpoints: safetensors weights (with the frozen VVQ copy) plus the configs as JSON metadata."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from vatcodec.fileio import atomic_output
from vatcodec.generation.config import GenConfig
from vatcodec.generation.model import NextScaleGenerator
from vatcodec.model.checkpoint import read_safetensors
from vatcodec.model.config import VATConfig
from vatcodec.model.quantizer import MultiScaleVQ

GEN_FORMAT = "vatcodec-generator-1"


def generator_id(cfg: GenConfig, state: dict[str, torch.Tensor]) -> str:
    """Hex id: a hash of the config and of the weights as stored."""
    h = hashlib.sha256(cfg.to_json().encode())
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def save_generator(
    path: str | os.PathLike,
    model: NextScaleGenerator,
    tokenizer_cfg: VATConfig,
    ema: NextScaleGenerator | None = None,
    meta: dict | None = None,
    dtype: torch.dtype | None = None,
) -> str:
    """Writes `model.*` (and `ema.*`) tensors atomically; returns the generator id of what `load_generator` uses."""

    def cast(m: NextScaleGenerator, prefix: str) -> dict[str, torch.Tensor]:
        out = {}
        for k, t in m.state_dict().items():
            t = t.detach().cpu().contiguous()
            # The VVQ copy stays fp32: its codes must equal the tokenizer's to give the same running sums.
            keep = dtype is None or not t.is_floating_point() or k.startswith("vq.")
            out[prefix + k] = t if keep else t.to(dtype)
        return out

    tensors = cast(model, "model.")
    if ema is not None:
        tensors.update(cast(ema, "ema."))
    used = _split(tensors, "ema." if ema is not None else "model.")
    ident = generator_id(model.cfg, used)
    metadata = {
        "format": GEN_FORMAT,
        "config": model.cfg.to_json(),
        "tokenizer_config": tokenizer_cfg.to_json(),
        "generator_id": ident,
        "meta": json.dumps(meta or {}),
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return ident


def _split(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def read_generator(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Raw tensors and metadata; a VatError for anything that is not a generator checkpoint."""
    return read_safetensors(path, GEN_FORMAT, "generator")


def load_generator(
    path: str | os.PathLike, dino_path=None, device: str | torch.device = "cpu", use_ema: bool = True
) -> NextScaleGenerator:
    """The generator of a checkpoint (EMA weights when present), float32, in eval mode on `device`."""
    tensors, metadata = read_generator(path)
    cfg = GenConfig.from_json(metadata["config"])
    model = NextScaleGenerator(
        cfg, MultiScaleVQ(VATConfig.from_json(metadata["tokenizer_config"])), dino_path
    )
    prefix = "ema." if use_ema and any(k.startswith("ema.") for k in tensors) else "model."
    state = _split(tensors, prefix)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    model.generator_id = metadata.get("generator_id", "")
    model.meta = json.loads(metadata.get("meta", "{}"))
    return model.to(device).eval()
