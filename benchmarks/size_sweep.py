"""Chooses vat-s sizes: short stage-1 runs of candidate configs, throughput against validation IoU.

python benchmarks/size_sweep.py --data data/cache --steps 200 --out benchmarks/results/size_sweep.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from training.tokenizer import TrainArgs, train
from vatcodec.model.config import get_config
from vatcodec.model.tokenizer import VAT

CANDIDATES = {
    "w96-d2": {"width": 96, "enc_depth": 2, "dec_depth": 2},
    "w128-d4 (vat-s)": {},
    "w192-d4": {"width": 192, "heads": 6},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/cache")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--runs", default="runs/sweep")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/size_sweep.json"))
    a = p.parse_args()
    rows = []
    for name, overrides in CANDIDATES.items():
        t = time.time()
        m = train(
            TrainArgs(
                data=a.data,
                out=f"{a.runs}/{name.split()[0]}",
                config="vat-s",
                overrides=json.dumps(overrides),
                steps=a.steps,
                stage1_steps=a.steps,
                batch_size=a.batch_size,
                warmup=50,
                val_every=0,
                ckpt_every=a.steps,
                val_shapes=32,
            )
        )
        seconds = time.time() - t
        params = sum(p.numel() for p in VAT(get_config("vat-s", **overrides)).parameters())
        rows.append(
            {
                "config": name,
                "overrides": overrides,
                "params_m": round(params / 1e6, 2),
                "steps": a.steps,
                "seconds": round(seconds, 1),
                "samples_per_s": round(a.steps * a.batch_size / seconds, 2),
                "val_iou": round(m["val_iou"], 4),
                "val_accuracy": round(m["val_accuracy"], 4),
            }
        )
        print(rows[-1], flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
