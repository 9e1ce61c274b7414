"""Tokenizer checkpoints as safetensors: weights (+ EMA), the config, the model id and entropy tables; never pickle."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from vatcodec.codec.byteio import MODEL_ID_BYTES
from vatcodec.errors import BitstreamError, VatError
from vatcodec.fileio import atomic_output
from vatcodec.model.config import VATConfig
from vatcodec.model.tokenizer import VAT

CKPT_FORMAT = "vatcodec-tokenizer-1"
TABLES_KEY = "entropy.freq_SK"  # int32 (scales, codebook size): the range coder's frequency tables


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
    freq_SK: np.ndarray | None = None,
) -> bytes:
    """Writes the model (and its EMA copy) atomically and returns the model id.

    `ema_only` ships the EMA weights as the model (smaller files for release). The model id is computed on the
    weights exactly as `load_model` will see them, after any cast to `dtype`. `freq_SK` are entropy tables to
    store with the model (by default the tables `model` was loaded with, if any).
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
    if freq_SK is None:
        freq_SK = getattr(model, "entropy_freq_SK", None)
    if freq_SK is not None:
        freq_SK = _checked_tables(model.cfg, freq_SK, "entropy tables")
        tensors[TABLES_KEY] = torch.from_numpy(freq_SK.astype(np.int32))
        from vatcodec.codec.entropy import tables_id  # constriction: only for models with tables

        metadata["entropy_id"] = tables_id(ident, freq_SK).hex()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return ident


def read_safetensors(
    path: str | os.PathLike, fmt: str, what: str
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Raw tensors and metadata of a checkpoint whose metadata says `format: fmt`; a VatError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise VatError(f"{what} checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise VatError(f"{path}: not a readable safetensors checkpoint ({e})") from None
    if metadata.get("format") != fmt:
        raise VatError(f"{path}: not a vatcodec {what} checkpoint (format {metadata.get('format')!r})")
    return tensors, metadata


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Raw tensors and metadata; a VatError for anything that is not one of our tokenizer checkpoints."""
    return read_safetensors(path, CKPT_FORMAT, "tokenizer")


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
    default_load = prefix == ("ema." if has_ema else "model.")
    if default_load and metadata.get("model_id") != ident.hex():
        raise VatError(f"{path}: weights do not match the model id in the checkpoint (corrupt file?)")
    model.model_id = ident
    model.entropy_freq_SK = model.entropy_id = None
    if TABLES_KEY in tensors:
        set_entropy_tables(
            model, _checked_tables(cfg, tensors[TABLES_KEY].numpy(), f"{path}: entropy tables")
        )
        if default_load and metadata.get("entropy_id") != model.entropy_id.hex():
            raise VatError(f"{path}: entropy tables do not match their id in the checkpoint (corrupt file?)")
    return model


def _checked_tables(cfg: VATConfig, freq_SK, what: str) -> np.ndarray:
    try:
        from vatcodec.codec.entropy import check_tables

        return check_tables(freq_SK, len(cfg.schedule), cfg.codebook_size)
    except BitstreamError as e:
        raise VatError(f"{what}: {e}") from None


def set_entropy_tables(model: VAT, freq_SK: np.ndarray | None) -> VAT:
    """Give a model (loaded or built in memory) entropy tables, or take them away with None; returns it.

    Sets `model.entropy_freq_SK` and `model.entropy_id`, the model id that range-coded files carry.

    Raises:
        VatError: the tables do not fit the model's schedule and codebook, or are not valid tables.
    """
    if freq_SK is None:
        model.entropy_freq_SK = model.entropy_id = None
        return model
    freq_SK = _checked_tables(model.cfg, freq_SK, "entropy tables")
    ident = getattr(model, "model_id", None) or model_id(model.cfg, model.state_dict())
    from vatcodec.codec.entropy import tables_id

    model.entropy_freq_SK, model.entropy_id = freq_SK, tables_id(ident, freq_SK)
    return model


def add_tables(
    src: str | os.PathLike, dst: str | os.PathLike, freq_SK: np.ndarray, info: dict | None = None
) -> bytes:
    """Copy checkpoint `src` to `dst` with entropy tables added (or replaced); returns the range-coded model id.

    Every other tensor and metadata field is kept as it is, so the model id of `dst` equals that of `src`.
    """
    tensors, metadata = read_checkpoint(src)
    cfg = VATConfig.from_json(metadata["config"])
    freq_SK = _checked_tables(cfg, freq_SK, "entropy tables")
    from vatcodec.codec.entropy import tables_id

    ident = tables_id(bytes.fromhex(metadata["model_id"]), freq_SK)
    tensors[TABLES_KEY] = torch.from_numpy(freq_SK.astype(np.int32))
    metadata = {**metadata, "entropy_id": ident.hex(), "entropy": json.dumps(info or {})}
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(dst, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return ident
