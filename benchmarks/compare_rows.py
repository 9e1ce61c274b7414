"""Paired comparison of two effort.py row files: mean F difference +- standard error on the meshes both have.

    PYTHONPATH=. python benchmarks/compare_rows.py A/rows.jsonl:2 B/rows.jsonl:3 [--rate bytes:1024]

Each argument is a rows.jsonl (or results.json) of `benchmarks/effort.py` and the effort level to take from it.
Prints both means on the shared meshes, B - A, and how many meshes differ by more than 0.01 each way (the
convention of the README's tables). Rows of runs under a time limit compare only within one machine state.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def load_rows(path: Path) -> list[dict]:
    """Rows of an effort.py run, from its rows.jsonl or results.json."""
    if path.suffix == ".json":
        return json.loads(path.read_text())["rows"]
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def select(rows: list[dict], effort: int, rate: str, field: str) -> dict[str, float]:
    """mesh -> field for one effort and rate; rows without the field (errors) are left out."""
    return {r["mesh"]: r[field] for r in rows if r["effort"] == effort and r["rate"] == rate and field in r}


def compare(a: dict[str, float], b: dict[str, float]) -> dict:
    """B - A on the shared meshes."""
    shared = sorted(set(a) & set(b))
    if len(shared) < 2:
        raise ValueError(f"{len(shared)} shared meshes: need at least 2")
    d = np.array([b[m] - a[m] for m in shared])
    return {
        "meshes": len(shared),
        "a": float(np.mean([a[m] for m in shared])),
        "b": float(np.mean([b[m] for m in shared])),
        "diff": float(d.mean()),
        "stderr": float(d.std(ddof=1) / np.sqrt(len(d))),
        "better": int((d > 0.01).sum()),
        "worse": int((d < -0.01).sum()),
    }


def parse_side(text: str) -> tuple[Path, int]:
    path, _, effort = text.rpartition(":")
    if not path or not effort.isdigit():
        raise argparse.ArgumentTypeError(f"expected ROWS:EFFORT, got {text!r}")
    return Path(path), int(effort)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=parse_side, help="ROWS:EFFORT, the baseline")
    parser.add_argument("b", type=parse_side, help="ROWS:EFFORT, the candidate")
    parser.add_argument("--rate", default="bytes:1024")
    parser.add_argument("--field", default="fscore")
    args = parser.parse_args(argv)
    sides = []
    for path, effort in (args.a, args.b):
        if not path.is_file():
            print(f"error: no such file: {path}", file=sys.stderr)
            return 2
        sides.append(select(load_rows(path), effort, args.rate, args.field))
    try:
        c = compare(*sides)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{c['meshes']} meshes, {args.field} at {args.rate}: A {c['a']:.4f}, B {c['b']:.4f},"
        f" B - A {c['diff']:+.4f} +- {c['stderr']:.4f} ({c['better']} better, {c['worse']} worse)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
