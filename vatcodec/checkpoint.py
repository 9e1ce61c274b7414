"""Tokenizer checkpoints as safetensors: weights (+ EMA), the config and the model id; never pickle."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .bitstream import MODEL_ID_BYTES
from .config import VATConfig
from .errors import VatError
from .fileio import atomic_output
from .tokenizer import VAT

CKPT_FORMAT = "vatcodec-tokenizer-1"


def model_id(cfg: VATConfig, state: dict[str, torch.Tensor]) -> bytes:
    """Hash of the decode-side config fields and of every weight decoding uses (codebook, Phi, decoder).

    The encoder is left out on purpose: a re-trained encoder that keeps the decoder writes files that the same
    decoder reads. Weights are hashed as float32 so an fp16 file and its float32 load agree.
    """
    h = hashlib.sha256(cfg.decode_json().encode())
    for name in sorted(k for k in state if k.startswith(("vq.", "decoder."))):
        h.update(name.encode())
        h.update(state[name].detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
    return h.digest()[:MODEL_ID_BYTES]


def split_state(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The state dict stored under `prefix` ("model." or "ema."), as float32."""
    return {k[len(prefix) :]: v.float() for k, v in tensors.items() if k.startswith(prefix)}


def save_checkpoint(
    path: str | os.PathLike,
    model: VAT,
    ema: VAT | None = None,
    meta: dict | None = None,
    dtype: torch.dtype | None = None,
    ema_only: bool = False,
) -> bytes:
    """Writes the model (and its EMA copy) atomically and returns the model id.

    `ema_only` ships the EMA weights as the model (smaller files for release). The model id is computed on the
    weights exactly as `load_model` will see them, after any cast to `dtype`.
    """

    def cast(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
        out = {}
        for k, t in sd.items():
            t = t.detach().cpu().contiguous()
            out[prefix + k] = t.to(dtype) if dtype is not None and t.is_floating_point() else t
        return out

    if ema_only and ema is not None:
        model, ema = ema, None
    tensors = cast(model.state_dict(), "model.")
    if ema is not None:
        tensors.update(cast(ema.state_dict(), "ema."))
    ident = model_id(model.cfg, split_state(tensors, "ema." if ema is not None else "model."))
    metadata = {
        "format": CKPT_FORMAT,
        "config": model.cfg.to_json(),
        "model_id": ident.hex(),
        "meta": json.dumps(meta or {}),
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return ident


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Raw tensors and metadata; a VatError for anything that is not one of our checkpoints."""
    path = Path(path)
    if not path.is_file():
        raise VatError(f"model checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise VatError(f"{path}: not a readable safetensors checkpoint ({e})") from None
    if metadata.get("format") != CKPT_FORMAT:
        raise VatError(f"{path}: not a vatcodec tokenizer checkpoint (format {metadata.get('format')!r})")
    return tensors, metadata


def load_model(path: str | os.PathLike, use_ema: bool = True, device: str = "cpu") -> VAT:
    """Builds the model from a checkpoint (EMA weights when present) in eval mode, checking its model id."""
    tensors, metadata = read_checkpoint(path)
    has_ema = any(k.startswith("ema.") for k in tensors)
    prefix = "ema." if use_ema and has_ema else "model."
    try:
        cfg = VATConfig.from_json(metadata["config"])
        model = VAT(cfg)
        model.load_state_dict(split_state(tensors, prefix))
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise VatError(f"{path}: checkpoint does not match this version of vatcodec ({first})") from None
    model = model.to(device).eval()
    ident = model_id(cfg, model.state_dict())
    # The stored id belongs to the weights a default load sees; check it to catch corrupt files.
    if prefix == ("ema." if has_ema else "model.") and metadata.get("model_id") != ident.hex():
        raise VatError(f"{path}: weights do not match the model id in the checkpoint (corrupt file?)")
    model.model_id = ident
    return model
