"""Generator speed and memory: seconds per sampled shape (token maps only, and with decoding) on CPU and GPU.

PYTHONPATH=. python benchmarks/generation_speed.py --out benchmarks/results/generation-speed.json \
    [--generator CKPT] [--image examples/chair.png] [--batches 1,8] [--repeats 5] [--threads 2] [--device auto]

Each configuration runs once to warm up, then --repeats times; the median is reported. Per shape = batch time /
batch size. "sample" is `NextScaleGenerator.sample` from the condition image (image encoder included), with and
without classifier-free guidance (which doubles the batch); "decode" is the tokenizer's decoding of one sample to
a mesh at 128 (CPU only). Peak memory: the process's peak RSS (CPU) and torch's peak allocation (GPU).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

from vatcodec import codec
from vatcodec.generation.checkpoint import load_generator
from vatcodec.generation.generate import condition_images, default_generator_path, generate, resolve_device


def timed(fn, repeats: int, sync) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/generation-speed.json"))
    p.add_argument("--generator", default=str(default_generator_path()))
    p.add_argument("--image", default="examples/chair.png")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    gen = load_generator(args.generator, device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    image_13HW = condition_images([args.image], gen.cfg.image_size).to(dev)
    rows = []
    for B in [int(b) for b in args.batches.split(",")]:
        images = image_13HW.expand(B, -1, -1, -1)
        for cfg_scale in (0.0, 1.0):

            def run(images=images, cfg_scale=cfg_scale):
                with torch.inference_mode():
                    rng = torch.Generator(device=dev).manual_seed(0)
                    gen.sample(gen.condition(images), cfg_scale, temperature=0.7, generator=rng)

            s = timed(run, args.repeats, sync)
            rows.append(
                {"what": "sample", "device": dev.type, "batch": B, "cfg": cfg_scale, "s_per_shape": s / B}
            )
            print(json.dumps(rows[-1]), flush=True)
    if dev.type == "cpu":
        data = generate([args.image], model=gen, device="cpu")[0]
        s = timed(lambda: codec.decode(data, resolution=128), args.repeats, sync)
        rows.append({"what": "decode@128", "device": "cpu", "batch": 1, "cfg": None, "s_per_shape": s})
        print(json.dumps(rows[-1]), flush=True)
    result = {
        "generator": args.generator,
        "generator_id": getattr(gen, "generator_id", ""),
        "params_m": sum(q.numel() for q in gen.parameters()) / 1e6,
        "torch_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "gpu": torch.cuda.get_device_name() if dev.type == "cuda" else None,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
