"""Plots of a benchmark's results.json: F-score and Chamfer against bytes (log x), PNG and SVG.

A separate step from measuring: `python -m vatcodec.bench.plot OUT/results.json` redraws from the file alone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

STYLE = {"classical-best": dict(color="black", ls="--"), "draco": dict(color="tab:orange", alpha=0.6),
         "voxel": dict(color="tab:green", alpha=0.6)}  # fmt: skip
# Our curves, in order: none of the baselines' colours, so that a second VAT curve is not read as Draco's.
VAT_COLORS = (
    "tab:blue",
    "tab:red",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:cyan",
    "tab:olive",
    "tab:gray",
)


def draw_plots(results_path: str | Path, out_dir: str | Path) -> list[Path]:
    """Writes rd_fscore.{png,svg} and rd_chamfer.{png,svg}; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")  # headless: CI and servers have no display
    import matplotlib.pyplot as plt

    results = json.loads(Path(results_path).read_text())
    out_dir = Path(out_dir)
    written = []
    for metric, label in (("fscore", "F-score (tau = 0.01)"), ("chamfer", "Chamfer distance (unit cube)")):
        fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
        ours = [c["name"] for c in results["codecs"] if c["name"] not in STYLE]
        for c in results["codecs"]:
            r = c["results"]
            pts = [
                (b, y) for b, y in zip(r["bytes"], r[metric], strict=True) if b is not None and y is not None
            ]
            if not pts:
                continue
            xs, ys = zip(*pts, strict=False)
            color = VAT_COLORS[ours.index(c["name"]) % len(VAT_COLORS)] if c["name"] in ours else None
            style = STYLE.get(c["name"], dict(color=color, lw=2.2))
            ax.plot(xs, ys, marker="o", ms=3.5, label=c["name"], **style)
        if metric == "fscore":
            for p in results.get("paper_points", []):
                ax.scatter([p["bytes"]], [p["fscore"]], marker="*", s=140, color="tab:red", zorder=5)
                ax.annotate(p["label"], (p["bytes"], p["fscore"]), textcoords="offset points", xytext=(6, -12),
                            fontsize=8, color="tab:red")  # fmt: skip
            ax.set_ylim(0, 1.02)
        ax.set_xscale("log")
        lo, hi = ax.get_xlim()
        ax.set_xlim(lo, max(hi, 12_000))  # room for the paper's 3.9 KB label
        ax.set_xlabel("bytes per shape (mean)")
        ax.set_ylabel(label)
        ax.set_title(f"{results.get('meshes', '?')} meshes from {Path(str(results.get('folder', ''))).name}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        for ext in ("png", "svg"):
            path = out_dir / f"rd_{metric}.{ext}"
            tmp = path.with_name(f".{path.name}.tmp")
            fig.savefig(tmp, format=ext)
            tmp.replace(path)  # a reader never sees half a plot
            written.append(path)
        plt.close(fig)
    return written


if __name__ == "__main__":
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "results.json")
    for p in draw_plots(src, src.parent):
        print(p)
