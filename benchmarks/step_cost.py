"""Seconds per training step of a tokenizer config, and where they go (encoder, plane path, queries), on the CPU.

PYTHONPATH=. python benchmarks/step_cost.py --overrides '{"plane_block": "res", "plane_min_channels": 32}' --threads 1
PYTHONPATH=. python benchmarks/step_cost.py --config vat-tp2 --compile        # torch.compile (inductor, CPU)
PYTHONPATH=. python benchmarks/step_cost.py --config vat-tp2 --channels-last  # plane convs in NHWC

Random inputs shaped like a real batch (batch 8, 4096 queries per shape); each figure is the mean of 3 timed
calls after one warm-up, forward and backward.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from vatcodec.model.config import get_config
from vatcodec.model.tokenizer import VAT


def timeit(f, n: int = 3) -> float:
    f()
    t = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t) / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="vat-s")
    p.add_argument("--overrides", default="{}")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--compile", action="store_true", help="time the step of torch.compile(model)")
    p.add_argument("--channels-last", action="store_true", help="model in channels_last memory format")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = get_config(a.config, **json.loads(a.overrides))
    m = VAT(cfg)
    if a.channels_last:
        m = m.to(memory_format=torch.channels_last)
    B = a.batch_size
    batch = {
        "surface_points": torch.rand(B, cfg.input_points, 3) - 0.5,
        "surface_normals": torch.nn.functional.normalize(torch.randn(B, cfg.input_points, 3), dim=-1),
        "query_points": torch.rand(B, 4096, 3) - 0.5,
        "query_occ": (torch.rand(B, 4096) > 0.7).float(),
    }
    opt = torch.optim.AdamW(m.parameters())
    surface_BN6 = torch.cat([batch["surface_points"], batch["surface_normals"]], -1)
    z_BKC = torch.randn(B, cfg.num_latents, cfg.latent_dim)

    def encoder():
        mu, logvar = m.encoder(surface_BN6)
        (mu.sum() + logvar.sum()).backward()

    def planes():
        sum(x.sum() for x in m.decoder.planes(z_BKC)).backward()

    def queries():
        planes_ = [x.detach().requires_grad_() for x in m.decoder.planes(z_BKC)]
        m.decoder.query(planes_, batch["query_points"]).sum().backward()

    fwd = m
    if a.compile:
        fwd = torch.compile(m)
        t = time.perf_counter()
        fwd(batch)["loss"].backward()  # compilation happens here, outside the timings
        compile_s = time.perf_counter() - t

    def step():
        out = fwd(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()

    row = {
        "config": a.config,
        "overrides": json.loads(a.overrides),
        "compile": a.compile,
        "channels_last": a.channels_last,
        "threads": a.threads,
        "params_M": round(sum(p.numel() for p in m.parameters()) / 1e6, 3),
        "encoder_s": round(timeit(encoder), 3),
        "planes_s": round(timeit(planes), 3),
        "queries_s": round(timeit(queries), 3),
        "step_s": round(timeit(step), 3),
    }
    row["samples_per_s"] = round(B / row["step_s"], 2)
    if a.compile:
        row["compile_s"] = round(compile_s, 1)
    print(json.dumps(row))


if __name__ == "__main__":
    main()
