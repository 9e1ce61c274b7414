"""Time a budget-filled (coder 4) file against whole scales on one mesh: encode at --budget, decode at 128.

PYTHONPATH=. python benchmarks/cut_cost.py examples/chair.obj --budget 256

One thread, one process, the model and prior loaded first; each figure is the best of --repeats runs. The
whole-scale file is the same budget's largest scale prefix (`scales=` that prefix, context coder).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from vatcodec import codec
from vatcodec.codec.bitstream import header_info
from vatcodec.codec.models import get_model, prior_of


def best_time(fn, repeats: int):
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mesh")
    ap.add_argument("--budget", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    net = get_model(None)
    prior_of(net)
    enc_cut, cut = best_time(lambda: codec.encode(args.mesh, model=net, max_bytes=args.budget), args.repeats)
    scales = header_info(cut)["scales_present"] - 1 or 1
    enc_whole, whole = best_time(
        lambda: codec.encode(args.mesh, model=net, coder="context", scales=scales), args.repeats
    )
    dec_cut, mesh_cut = best_time(lambda: codec.decode(cut, model=net, resolution=128), args.repeats)
    dec_whole, mesh_whole = best_time(lambda: codec.decode(whole, model=net, resolution=128), args.repeats)
    print(
        json.dumps(
            {
                "budget": args.budget,
                "cut": {"bytes": len(cut), "encode_s": round(enc_cut, 3), "decode128_s": round(dec_cut, 3),
                        "faces": len(mesh_cut.faces)},
                "whole": {"bytes": len(whole), "scales": scales, "encode_s": round(enc_whole, 3),
                          "decode128_s": round(dec_whole, 3), "faces": len(mesh_whole.faces)},
            }
        )
    )  # fmt: skip


if __name__ == "__main__":
    main()
