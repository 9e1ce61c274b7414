"""Where a decode's time goes: start-up, load, planes, queries, marching cubes, write; per resolution and threads.

    PYTHONPATH=. python benchmarks/decode_profile.py tests/golden/chair-vat-s.vat \
        --resolutions 128,256,512 --threads 1,2 --repeats 3

Every measurement is a fresh process, as a user's command is:
- `startup_torch_s`: a process that only imports torch (the floor no decode can go under);
- `cli_s`: `python -m vatcodec decode FILE -o OUT.obj -r R` end to end, with OMP_NUM_THREADS = threads;
- the stages, from a process that runs `decode_arrays(stats=...)` and writes the OBJ the way the CLI does,
  with its peak resident memory;
- `dense_mc_s`: one PyMCubes pass over the whole (R+1)^3 grid of the same shape, the issue's yardstick.

Medians over `--repeats`. Rows go to benchmarks/results/decode_profile.jsonl and a Markdown table to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "decode_profile.jsonl"


def _child(file: str, resolution: int, out: str) -> None:
    t0 = time.perf_counter()
    import resource

    import numpy as np

    from vatcodec.codec.decoding import decode_arrays
    from vatcodec.geometry.mesh_write import write_mesh

    t1 = time.perf_counter()
    stats: dict = {}
    v_N3, f_F3 = decode_arrays(Path(file).read_bytes(), resolution=resolution, stats=stats)
    t2 = time.perf_counter()
    write_mesh(v_N3, f_F3, out)
    t3 = time.perf_counter()
    stats.update(imports_s=t1 - t0, decode_s=t2 - t1, write_s=t3 - t2)
    stats["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # The yardstick: one dense marching-cubes pass over a grid of the final size (a sphere, so that it has
    # a surface of realistic extent).
    import mcubes

    n = resolution + 1
    g = np.linspace(-1, 1, n, dtype=np.float32)
    grid = 0.6 - np.sqrt(g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2)
    t = time.perf_counter()
    mcubes.marching_cubes(grid, 0.0)
    stats["dense_mc_s"] = time.perf_counter() - t
    print(json.dumps(stats))


def _run(cmd: list[str], threads: int) -> tuple[float, str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - t, done.stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", nargs="?", default="tests/golden/chair-vat-s.vat")
    p.add_argument("--resolutions", default="128,256,512")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--child", nargs=2, metavar=("RES", "OUT"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        _child(a.file, int(a.child[0]), a.child[1])
        return
    py = sys.executable
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "out.obj")
        for threads in map(int, a.threads.split(",")):
            torch_s = statistics.median(
                _run([py, "-c", "import torch"], threads)[0] for _ in range(a.repeats)
            )
            for res in map(int, a.resolutions.split(",")):
                cli = [py, "-m", "vatcodec", "decode", a.file, "-o", out, "-r", str(res)]
                cli_s = statistics.median(_run(cli, threads)[0] for _ in range(a.repeats))
                stages = [
                    json.loads(_run([py, __file__, a.file, "--child", str(res), out], threads)[1])
                    for _ in range(a.repeats)
                ]
                row = {k: statistics.median(s[k] for s in stages) for k in stages[0]}
                row.update(
                    file=a.file,
                    resolution=res,
                    threads=threads,
                    startup_torch_s=torch_s,
                    cli_s=cli_s,
                    cli_less_torch_s=cli_s - torch_s,
                    machine=platform.node(),
                    load_avg=os.getloadavg()[0],
                    when=time.strftime("%Y-%m-%d %H:%M:%S"),
                )
                row["target_ratio"] = row["cli_less_torch_s"] / row["dense_mc_s"]
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
    a.results.parent.mkdir(parents=True, exist_ok=True)
    with a.results.open("a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    cols = [
        "resolution",
        "threads",
        "startup_torch_s",
        "imports_s",
        "load_s",
        "planes_s",
        "queries",
        "queries_s",
        "grid_s",
        "marching_cubes_s",
        "write_s",
        "cli_s",
        "cli_less_torch_s",
        "dense_mc_s",
        "target_ratio",
        "peak_rss_mb",
        "faces",
    ]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
