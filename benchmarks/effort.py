"""Encoder effort 0-3 against each other: bytes, F-score, occupancy loss and encode time per mesh and rate.

PYTHONPATH=. python benchmarks/effort.py <corpus>/katorlegaz --out benchmarks/results/effort \
    [--efforts 0,1,2,3] [--budgets 1024,4096] [--prefixes N,...] [--limit N] [--model CKPT] [--threads 2]

Each rate is either a byte budget (`encode(max_bytes=B)`: the largest prefix of scales that fits, refined for
that prefix) or a fixed prefix (`encode(scales=N)`). F-score, Chamfer and normal consistency use the dense
protocol of `vatcodec.geometry.metrics` in the reference mesh's unit-cube frame, on `codec.decode` at `--resolution`
(as `vatcodec/bench/measure.py` does); `loss` is the refinement's objective (BCE on the shape's occupancy
samples, seed 0, 8192 + 8192 of them for every level; a level whose plan refines on fewer never makes the loss on
its own samples worse than effort 0; this column measures it on the larger set). Encode time is the wall time of
`encode` alone, with `--threads` torch threads. Rows go to OUT/rows.jsonl as they are measured (a rerun resumes), then
OUT/rows.csv, OUT/summary.csv and OUT/results.json (means per rate and effort, F gain over effort 0 on the same
meshes).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from vatcodec import codec
from vatcodec.codec import effort
from vatcodec.codec.bitstream import header_info
from vatcodec.errors import VatError
from vatcodec.geometry.mesh_io import SUPPORTED_SUFFIXES, load_mesh, normalize_mesh
from vatcodec.geometry.metrics import decoded_surface_metrics

FIELDS = (
    "mesh", "rate", "effort", "scales", "bytes", "fscore", "chamfer", "normal_consistency", "loss",
    "encode_s", "decode_s", "level", "time_limit_cut", "error",
)  # fmt: skip


def find_meshes(folder: Path, limit: int) -> list[Path]:
    """Mesh files under a folder, sorted by path; the first `limit` (0: all)."""
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)
    return paths[:limit] if limit else paths


def measure(
    path: Path, root: Path, net, rates: list[tuple[str, int]], efforts: list[int], args
) -> list[dict]:
    """One row per rate and effort for one mesh."""
    ref = load_mesh(path)
    ref_unit, norm = normalize_mesh(ref)
    # One sample set for every level's loss, so that rows compare; a level refines on its own plan's number.
    samples = effort.occupancy_samples(ref_unit, seed=0, cfg=net.cfg)
    rows = []
    for rate in rates:
        kind, value = rate
        option = {"max_bytes": value} if kind == "bytes" else {"scales": value}
        for level in efforts:
            row = {"mesh": str(path.relative_to(root)), "rate": f"{kind}:{value}", "effort": level}
            t = time.perf_counter()
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", codec.TimeLimitWarning)
                    data = codec.encode(
                        ref,
                        model=net,
                        effort=level,
                        time_limit=args.time_limit,
                        level_search=args.search,
                        tries=args.tries,
                        also_models=tuple(args.also_model),
                        **option,
                    )
            except VatError as exc:  # e.g. a budget below the one-scale file
                rows.append({**row, "error": str(exc)})
                continue
            row["encode_s"] = time.perf_counter() - t
            cut = False
            for w in caught:
                if issubclass(
                    w.category, codec.TimeLimitWarning
                ):  # what the limit cut short, as the CLI says it
                    row["time_limit_cut"], cut = str(w.message), True
                else:  # the others, as they would have been shown
                    print(f"{path.name}: warning: {w.message}", file=sys.stderr)
            # With --also-model the file may name another model: decode it with the one it names (bundled or given).
            fnet = codec.model_for_file(header_info(data), None if args.also_model else net)
            vat = codec.unpack_for(data, fnet)
            # A cut, completed file (coder 4) decodes soft tokens: the loss of its indices alone means nothing.
            loss = float("nan") if vat.completed else effort.indices_loss(fnet, vat.indices, samples)
            row.update(scales=len(vat.indices), tokens=sum(map(len, vat.indices)), bytes=len(data), loss=loss)
            row["level"] = header_info(data).get("level_offset", 0.0)
            row["model_id"] = header_info(data)["model_id"]
            t = time.perf_counter()
            try:
                mesh = codec.decode(data, model=fnet, resolution=args.resolution)
            except VatError as exc:  # an empty decoded shape scores F = 0
                mesh, row["error"] = None, str(exc)
            row["decode_s"] = time.perf_counter() - t
            row.update(decoded_surface_metrics(mesh, ref_unit, norm))
            rows.append(row)
            print(
                f"{row['mesh']} {row['rate']} effort {level}: {row['bytes']} B, {row['scales']} scales,"
                f" F {row['fscore']:.4f}, loss {row['loss']:.4f}, {row['encode_s']:.1f} s"
                + (" (time limit)" if cut else ""),
                flush=True,
            )
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Means per rate and effort, and the mean F gain over effort 0 on the meshes both have."""
    ok = [r for r in rows if r.get("bytes")]
    base = {(r["mesh"], r["rate"]): r["fscore"] for r in ok if r["effort"] == 0}
    out = []
    for rate in sorted({r["rate"] for r in ok}):
        for level in sorted({r["effort"] for r in ok if r["rate"] == rate}):
            sel = [r for r in ok if r["rate"] == rate and r["effort"] == level]
            gains = [r["fscore"] - base[r["mesh"], rate] for r in sel if (r["mesh"], rate) in base]
            out.append(
                {
                    "rate": rate,
                    "effort": level,
                    "meshes": len(sel),
                    "bytes": float(np.mean([r["bytes"] for r in sel])),
                    "fscore": float(np.mean([r["fscore"] for r in sel])),
                    "fscore_gain": float(np.mean(gains)) if gains else None,
                    "loss": float(np.mean([r["loss"] for r in sel])),
                    "encode_s": float(np.mean([r["encode_s"] for r in sel])),
                    "encode_s_max": float(np.max([r["encode_s"] for r in sel])),
                    "time_limit_cut": sum(bool(r.get("time_limit_cut")) for r in sel),
                    "level_not_searched": sum("not searched" in r.get("time_limit_cut", "") for r in sel),
                }
            )
    return out


def write_csv(path: Path, rows: list[dict], fields) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()] if text else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/effort"))
    parser.add_argument("--efforts", default="0,1,2,3")
    parser.add_argument("--budgets", default="1024,4096", help="byte budgets (max_bytes)")
    parser.add_argument("--prefixes", default="", help="fixed scale prefixes (scales)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N meshes")
    parser.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--time-limit", type=float, default=None, help="encode(time_limit=S) per file")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the target is 2 CPU cores)")
    parser.add_argument(
        "--level-search",
        choices=("auto", "on", "off"),
        default="auto",
        help="encode(level_search=...): auto is the codec's default (on for effort 1-3)",
    )
    parser.add_argument(
        "--tries", type=int, default=1, help="encode(tries=K): surface samplings tried per file"
    )
    parser.add_argument(
        "--also-model", action="append", default=[], help="encode(also_models=...), repeatable"
    )
    parser.add_argument(
        "--reverse",
        action="store_true",
        help="last mesh first: a second process on the same OUT meets the first",
    )
    args = parser.parse_args(argv)
    args.search = {"auto": None, "on": True, "off": False}[args.level_search]

    torch.set_num_threads(args.threads)
    efforts = int_list(args.efforts)
    rates = [("bytes", b) for b in int_list(args.budgets)] + [("scales", n) for n in int_list(args.prefixes)]
    paths = find_meshes(args.folder, args.limit)
    if not paths:
        print(f"error: no meshes under {args.folder}", file=sys.stderr)
        return 2
    net = codec.get_model(args.model)
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / "rows.jsonl"

    def read_rows() -> list[dict]:
        return [json.loads(line) for line in cache.read_text().splitlines()] if cache.exists() else []

    for path in reversed(paths) if args.reverse else paths:
        # Read again before every mesh: another process may share OUT (--reverse) and have measured it.
        if str(path.relative_to(args.folder)) in {r["mesh"] for r in read_rows()}:
            continue
        new = measure(path, args.folder, net, rates, efforts, args)
        with cache.open("a") as f:  # one mesh at a time, so an interrupted run resumes at the next mesh
            f.writelines(json.dumps(r) + "\n" for r in new)
    # Where two processes met, a mesh may have been measured twice: keep its first rows.
    unique: dict[tuple, dict] = {}
    for r in read_rows():
        unique.setdefault((r["mesh"], r["rate"], r["effort"]), r)
    rows = list(unique.values())
    summary = summarize(rows)
    write_csv(args.out / "rows.csv", rows, FIELDS)
    write_csv(args.out / "summary.csv", summary, summary[0].keys() if summary else ["rate"])
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    results = {
        "settings": settings,
        "model_id": codec.model_id_of(net).hex(),
        "summary": summary,
        "rows": rows,
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    for s in summary:
        gain = "" if s["fscore_gain"] is None else f" (gain {s['fscore_gain']:+.4f})"
        print(
            f"{s['rate']:>12} effort {s['effort']}: {s['meshes']} meshes, {s['bytes']:.0f} B,"
            f" F {s['fscore']:.4f}{gain}, loss {s['loss']:.4f}, encode {s['encode_s']:.1f} s"
            f" (max {s['encode_s_max']:.1f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
