"""Exports a training run's EMA weights as a release checkpoint (fp16, weights only) for vatcodec/weights/.

python -m training.export runs/vat-s/last.safetensors vatcodec/weights/vat-s.safetensors
python -m training.export runs/gen-s/last.safetensors vatcodec/weights/gen-s.safetensors   # a generator run
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import torch

from vatcodec.model.checkpoint import TABLES_KEY, read_checkpoint, save_checkpoint, split_state
from vatcodec.model.config import VATConfig
from vatcodec.model.tokenizer import VAT


def export(
    src: str,
    dst: str,
    note: dict | None = None,
    iso_logit: float | None = None,
    prefix_iso: tuple[float, ...] | None = None,
) -> bytes:
    """Writes the EMA weights of `src` in fp16 (and its entropy tables, if any) to `dst`; returns the model id.

    `iso_logit` sets the decoded surface's level (chosen on validation for models trained on dilated labels);
    it is a decode-side field, so it changes the model id. `prefix_iso` does the same for the shorter prefixes
    (`benchmarks/prefix_iso.py` measures them).
    """
    tensors, meta = read_checkpoint(src)
    cfg = VATConfig.from_json(meta["config"])
    if iso_logit is not None:
        cfg = dataclasses.replace(cfg, iso_logit=iso_logit)
    if prefix_iso is not None:
        cfg = dataclasses.replace(cfg, prefix_iso=prefix_iso)
    model = VAT(cfg)
    model.load_state_dict(
        split_state(tensors, "ema." if any(k.startswith("ema.") for k in tensors) else "model.")
    )
    info = {**json.loads(meta.get("meta", "{}")), **(note or {})}
    tables = tensors[TABLES_KEY].numpy() if TABLES_KEY in tensors else None  # entropy tables travel along
    return save_checkpoint(dst, model, meta=info, dtype=torch.float16, freq_SK=tables)


def export_generator(src: str, dst: str, note: dict | None = None) -> str:
    """Writes a generator run's EMA weights in fp16 (its frozen VVQ copy stays fp32) to `dst`; returns its id."""
    from vatcodec.generation.checkpoint import load_generator, read_generator, save_generator
    from vatcodec.model.config import VATConfig as TokConfig

    _, meta = read_generator(src)
    gen = load_generator(src, use_ema=True)
    info = {**json.loads(meta.get("meta", "{}")), **(note or {})}
    return save_generator(
        dst, gen, TokConfig.from_json(meta["tokenizer_config"]), meta=info, dtype=torch.float16
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--note", default="{}", help="JSON merged into the checkpoint's meta (data, hours, ...)")
    p.add_argument(
        "--iso-logit", type=float, default=None, help="tokenizers: the decoded surface's logit level"
    )
    p.add_argument(
        "--prefix-iso",
        type=lambda t: tuple(float(x) for x in t.split(",")) if t else (),
        default=None,
        help="tokenizers: levels of the prefixes of 1, 2, ... scales, e.g. --prefix-iso=-1,-0.5 (empty: none)",
    )
    a = p.parse_args(argv)
    from safetensors import safe_open

    with safe_open(a.src, framework="pt") as f:
        is_generator = (f.metadata() or {}).get("format", "").startswith("vatcodec-generator")
    if is_generator:
        print(export_generator(a.src, a.dst, json.loads(a.note)))
    else:
        print(export(a.src, a.dst, json.loads(a.note), a.iso_logit, a.prefix_iso).hex())
    return 0


if __name__ == "__main__":
    sys.exit(main())
