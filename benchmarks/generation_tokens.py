"""Generator token accuracy: teacher-forced against free-running (greedy, cfg 0), per scale, on gen_data rows.

PYTHONPATH=. python benchmarks/generation_tokens.py --data data/gen --split train --rows 8 --views 0,3 \
    --out benchmarks/results/generation-tokens-train.json [--generator CKPT]

Teacher-forced accuracy feeds the true earlier scales (what training optimizes); free-running match feeds the
generator's own earlier samples (what `vatcodec generate` does). The gap between them is exposure bias.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from training.gen_data import load_parts
from vatcodec.generation.checkpoint import load_generator
from vatcodec.generation.generate import default_generator_path
from vatcodec.generation.image_input import to_tensor


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--split", default="train")
    p.add_argument("--rows", type=int, default=8, help="evenly spaced rows of the split")
    p.add_argument("--views", default="0,3")
    p.add_argument("--generator", default=str(default_generator_path()))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_parts(args.data, (args.split,))
    gen = load_generator(args.generator)
    rows = np.linspace(0, len(data["names"]) - 1, args.rows).round().astype(int)
    tokens_BL = torch.from_numpy(data["tokens"][rows])
    result = {"generator": args.generator, "split": args.split, "rows": rows.tolist(), "views": {}}
    for view in [int(v) for v in args.views.split(",")]:
        images = to_tensor(data["images"][rows, view])
        with torch.inference_mode():
            forced = gen({"images": images, "tokens": tokens_BL})
            free = gen.sample(gen.condition(images), 0.0, top_k=1)
        match_BL = (torch.cat(free["indices"], dim=1) == tokens_BL).float()
        result["views"][view] = {
            "teacher_forced_acc": float(forced["acc"]),
            "teacher_forced_acc_per_scale": [round(float(a), 4) for a in forced["acc_per_scale"]],
            "free_running_match": float(match_BL.mean()),
            "free_running_match_per_scale": [
                round(float(m.mean()), 4) for m in match_BL.split(gen.counts, dim=1)
            ],
        }
        print(view, json.dumps(result["views"][view]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
