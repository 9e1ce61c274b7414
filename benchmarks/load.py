"""The codec under CPU load: encode (effort 0 and 3) and decode at 256, idle and beside one busy process.

    PYTHONPATH=. python benchmarks/load.py [--mesh examples/chair.obj] [--threads 1,2,default] [--cap 300]

Each command is a fresh `python -m vatcodec ...` process, timed end to end. "loaded" runs it beside one
CPU-bound Python loop that this script starts before and stops after (bounded by `--cap` seconds, so it
can never outlive the benchmark). Threads: `1` and `2` set OMP_NUM_THREADS; `default` sets nothing, so the
codec's own thread policy chooses. A command still running at `--cap` seconds is stopped and reported as
`> cap`. Rows go to benchmarks/results/load.jsonl and a Markdown table to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "load.jsonl"
BUSY = "import time\nend = time.monotonic() + {cap}\nwhile time.monotonic() < end:\n    pass\n"


def _timed(cmd: list[str], threads: str, cap: float) -> float | None:
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(k, None)
        if threads != "default":
            env[k] = threads
    start = time.perf_counter()
    try:
        subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=cap)
    except subprocess.TimeoutExpired:
        return None
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mesh", default="examples/chair.obj")
    p.add_argument("--threads", default="1,2,default")
    p.add_argument("--efforts", default="0,3")
    p.add_argument("--loads", default="idle,loaded")
    p.add_argument("--cap", type=float, default=300.0, help="seconds after which a command is stopped")
    p.add_argument("--results", type=Path, default=RESULTS)
    a = p.parse_args()
    py = [sys.executable, "-m", "vatcodec"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        vat = str(Path(tmp) / "m.vat")
        subprocess.run([*py, "encode", a.mesh, "-o", vat], check=True, capture_output=True)
        commands = {
            f"encode --effort {e}": [
                *py,
                "encode",
                a.mesh,
                "-o",
                str(Path(tmp) / f"e{e}.vat"),
                "--effort",
                e,
                "--time-limit",
                "0",
            ]
            for e in a.efforts.split(",")
        }
        commands["decode -r 256"] = [*py, "decode", vat, "-o", str(Path(tmp) / "d.obj"), "-r", "256"]
        for load in a.loads.split(","):
            for threads in a.threads.split(","):
                for name, cmd in commands.items():
                    busy = None
                    if load == "loaded":
                        busy = subprocess.Popen([sys.executable, "-c", BUSY.format(cap=a.cap + 60)])
                        time.sleep(1.0)  # let it take its core
                    try:
                        seconds = _timed(cmd, threads, a.cap)
                    finally:
                        if busy is not None:
                            busy.kill()
                            busy.wait()
                    row = {
                        "command": name,
                        "load": load,
                        "threads": threads,
                        "seconds": seconds,
                        "cap": a.cap,
                        "mesh": a.mesh,
                        "machine": platform.node(),
                        "cpus": len(os.sched_getaffinity(0)),
                        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
                    }
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
    a.results.parent.mkdir(parents=True, exist_ok=True)
    with a.results.open("a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    idle = {(r["command"], r["threads"]): r["seconds"] for r in rows if r["load"] == "idle"}
    best_idle = {c: min(s for (c2, _), s in idle.items() if c2 == c and s) for c, _ in idle}
    print("| command | load | threads | seconds | vs best idle |")
    print("|---|---|---|---|---|")
    for r in rows:
        s = r["seconds"]
        shown = f"> {r['cap']:.0f}" if s is None else f"{s:.1f}"
        ratio = "" if s is None or r["command"] not in best_idle else f"{s / best_idle[r['command']]:.2f}x"
        print(f"| {r['command']} | {r['load']} | {r['threads']} | {shown} | {ratio} |")


if __name__ == "__main__":
    main()
