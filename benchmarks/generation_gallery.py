"""A picture of generation on held-out renders: condition image, generated sample, retrieved mesh, reference.

PYTHONPATH=. python benchmarks/generation_gallery.py --eval-data data/gen-test --eval-root <corpus>/katorlegaz \
    --train-data data/gen --train-root <corpus> --rows 0,20,40,60 \
    --out benchmarks/results/generation-katorlegaz/gallery.png

Same protocol as benchmarks/generation.py (view 1, seed 0, default sampling settings, decode at 128, retrieval in
the generator's embedding space); every shape is drawn in its own unit cube from one camera.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.generation import decode_tokens, embed_all
from training.gen_data import load_parts
from vatcodec import codec
from vatcodec.generation.checkpoint import load_generator
from vatcodec.generation.generate import DEFAULT_CFG, DEFAULT_TEMPERATURE, default_generator_path
from vatcodec.generation.image_input import to_tensor
from vatcodec.geometry.mesh_io import load_mesh, normalize_mesh
from vatcodec.views.render import render


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--eval-data", type=Path, required=True)
    p.add_argument("--eval-root", type=Path, required=True)
    p.add_argument("--train-data", type=Path, required=True)
    p.add_argument("--train-root", type=Path, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--rows", default="0,20,40,60")
    p.add_argument("--view", type=int, default=1)
    p.add_argument("--size", type=int, default=160)
    p.add_argument("--generator", default=str(default_generator_path()))
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    gen, net = load_generator(args.generator), codec.get_model()
    ev, tr = load_parts(args.eval_data, (args.split,)), load_parts(args.train_data, ("train",))
    train_emb = embed_all(gen, tr["images"])
    lines = []
    for i in [int(r) for r in args.rows.split(",")]:
        image = ev["images"][i, args.view]
        with torch.inference_mode():
            cond = gen.condition(to_tensor(image[None]))
            rng = torch.Generator().manual_seed(0)
            out = gen.sample(cond, DEFAULT_CFG, temperature=DEFAULT_TEMPERATURE, generator=rng)
        sample = decode_tokens(net, torch.cat(out["indices"], 1)[0].numpy(), 128)
        j = int((train_emb @ embed_all(gen, ev["images"][i : i + 1, args.view : args.view + 1])[0]).argmax())
        retrieved, _ = normalize_mesh(load_mesh(args.train_root / tr["names"][j // tr["images"].shape[1]]))
        reference, _ = normalize_mesh(load_mesh(args.eval_root / ev["names"][i]))
        cond_img = np.asarray(Image.fromarray(image).resize((args.size, args.size), Image.Resampling.NEAREST))
        views = [
            render(m, size=args.size, azimuth_deg=45, elevation_deg=20)
            for m in (sample, retrieved, reference)
        ]
        lines.append(np.concatenate([cond_img, *views], axis=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(lines, axis=0)).save(args.out)
    print(f"wrote {args.out}: rows = condition image | generated | retrieved | reference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
