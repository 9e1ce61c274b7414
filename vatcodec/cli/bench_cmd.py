"""`vatcodec bench`: rate-distortion of our codec and the classical ones over a folder of meshes."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from vatcodec.cli.app import ThreadsOption, command, console, fail


def _int_list(text: str | None, flag: str) -> tuple[int, ...]:
    if not text:
        return ()
    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError:
        fail(f"{flag} takes comma-separated integers, got {text!r}")
    if any(v < 1 for v in values):
        fail(f"{flag} values must be positive, got {text!r}")
    return values


@command("bench")
def bench_cmd(
    folder: Annotated[
        str | None, typer.Argument(metavar="FOLDER", help="Meshes to measure (recursively).")
    ] = None,
    output: Annotated[
        str, typer.Option("--output", "-o", metavar="OUT", help="Output folder (also the cache).")
    ] = ("bench"),
    quick: Annotated[
        bool, typer.Option("--quick", help="Smoke run: 3 small built-in meshes, few rates.")
    ] = False,
    models: Annotated[
        list[str] | None,
        typer.Option("--model", metavar="PATH", help="Checkpoint(s) of our codec (repeatable)."),
    ] = None,
    codecs: Annotated[str, typer.Option("--codecs", metavar="LIST", help="Any of vat,draco,voxel.")] = (
        "vat,draco,voxel"
    ),
    budgets: Annotated[
        str | None,
        typer.Option(
            "--budgets", metavar="B,..", help="Baseline byte budgets (ours too with --vat-budgets)."
        ),
    ] = None,
    prefixes: Annotated[
        str | None, typer.Option("--prefixes", metavar="N,..", help="Our scale prefixes [all].")
    ] = None,
    resolution: Annotated[
        int, typer.Option("--resolution", "-r", metavar="R", help="Our decode resolution.")
    ] = 256,
    occupancy: Annotated[
        bool, typer.Option("--occupancy/--no-occupancy", help="Also measure tokenizer Acc/IoU/NSA/CS-IoU.")
    ] = True,
    jobs: Annotated[int, typer.Option("--jobs", "-j", metavar="J", help="Worker processes.")] = 1,
    limit: Annotated[int, typer.Option("--limit", metavar="N", help="Only the first N meshes.")] = 0,
    gallery: Annotated[
        int, typer.Option("--gallery", metavar="N", help="Meshes in gallery.png (0: none).")
    ] = 3,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Draw rd_*.png/svg.")] = True,
    pages: Annotated[
        int,
        typer.Option("--pages", metavar="N", help="`vatcodec view` pages for the first N gallery meshes."),
    ] = 0,
    vat_budgets: Annotated[
        bool,
        typer.Option(
            "--vat-budgets",
            help="Measure our codec at the --budgets (`encode --max-bytes B`, the default coder filling each"
            " budget) instead of at scale prefixes; with the encode options below.",
        ),
    ] = False,
    effort: Annotated[
        int,
        typer.Option(
            "--effort", "-e", metavar="0-3", help="With --vat-budgets: encoder effort (no time limit)."
        ),
    ] = 0,
    level_search: Annotated[
        bool | None,
        typer.Option(
            "--level-search/--no-level-search", help="With --vat-budgets: as for encode.", show_default=False
        ),
    ] = None,
    tries: Annotated[
        int, typer.Option("--tries", metavar="K", help="With --vat-budgets: as for encode.")
    ] = 1,
    also_model: Annotated[
        list[str] | None,
        typer.Option("--also-model", metavar="CKPT", help="With --vat-budgets: as for encode (repeatable)."),
    ] = None,
    threads: ThreadsOption = None,
) -> None:
    """Rate-distortion of our codec against simplify+Draco and voxels+zstd; resumes from OUT/rows.jsonl."""
    from vatcodec.bench import BenchOptions, run_bench
    from vatcodec.bench.report import print_table
    from vatcodec.bench.run import BUDGETS, QUICK_BUDGETS

    if quick and folder:
        fail("--quick uses built-in meshes: drop FOLDER or --quick")
    opts = BenchOptions(
        folder=folder,
        out=output,
        models=list(models or []),
        codecs=tuple(c.strip() for c in codecs.split(",") if c.strip()),
        budgets=_int_list(budgets, "--budgets") or (QUICK_BUDGETS if quick else BUDGETS),
        prefixes=_int_list(prefixes, "--prefixes"),
        resolution=resolution,
        occupancy=occupancy,
        jobs=jobs,
        threads=threads,
        limit=limit,
        gallery=gallery,
        pages=pages,
        plots=plots,
        quick=quick,
        vat_budgets=vat_budgets,
        effort=effort,
        level_search=level_search,
        tries=tries,
        also_models=list(also_model or []),
    )
    if quick and resolution == 256:
        opts.resolution = 128
    if quick:
        opts.gallery = min(gallery, 1)
    print_table(run_bench(opts, progress=console.is_terminal), console)
    console.print(
        Text(f"wrote {output}/results.json, per_mesh.csv, summary.csv, plots and gallery"), soft_wrap=True
    )


# Commands that live in their own modules register themselves on import (they use `command` above).
