"""The `vatcodec` command line: a thin shell over the library, one function per command.

Conventions every command follows (add new commands with `@command()`, not `@app.command()`):
- A `VatError` prints exactly one line `error: <message>` on stderr and exits with status 2; Ctrl-C
  exits with status 130. Other exceptions are bugs and keep their traceback.
- File arguments are plain `str`; `-` means stdin/stdout. Read with `fileio.read_input_bytes` and
  write with `fileio.atomic_write_bytes` / `fileio.atomic_output`, so errors are one line and
  failed runs leave no partial files.
- Heavy modules (torch, trimesh, the model) are imported inside command bodies, never at module
  level, so `vatcodec info` and `--help` stay fast.
- Machine-readable output (`--json`) goes to stdout via `print`; human output via `console`.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from vatcodec import __version__
from vatcodec.errors import VatError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="vatcodec",
    help="Compress 3D shapes into a few hundred bytes of VAT tokens (.vat files).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console()


def fail(message: str) -> NoReturn:
    """Print `error: <message>` as one line on stderr and exit with status 2."""
    line = " ".join(str(message).split()) or "unknown error"
    typer.echo(f"error: {line}", err=True)
    raise typer.Exit(EXIT_USER_ERROR)


def handle_errors(fn: Callable) -> Callable:
    """Apply the CLI error convention (see module docstring) to a command function."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except VatError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            # The reader (e.g. `| head`) went away: stop quietly, and keep Python's final
            # flush of stdout from raising again at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(1) from None

    return wrapper


def command(*args, **kwargs) -> Callable[[Callable], Callable]:
    """Register a command on `app` with the shared error handling."""

    def register(fn: Callable) -> Callable:
        return app.command(*args, **kwargs)(handle_errors(fn))

    return register


def _print_version(value: bool) -> None:
    if value:
        from vatcodec.bitstream import FORMAT_MAJOR, FORMAT_MINOR

        typer.echo(f"vatcodec {__version__} (.vat format {FORMAT_MAJOR}.{FORMAT_MINOR})")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_print_version, is_eager=True, help="Show version and exit."
        ),
    ] = False,
) -> None:
    """Compress 3D shapes into a few hundred bytes of VAT tokens (.vat files)."""


# --- info -------------------------------------------------------------------------------------


def _info_rows(info: dict) -> list[tuple[str, str]]:
    sizes = f"{info['file_bytes']} B = {info['header_bytes']} header+CRC"
    rows = [
        ("format", info["format"]),
        ("size", f"{sizes} + {info['payload_bytes']} payload"),
        ("model id", info["model_id"]),
        ("codebook", f"{info['codebook_size']} entries, {info['index_bits']}-bit indices"),
        ("coder", f"{info['coder']} ({info['bits_per_token']} bits/token)"),
        (
            "scales",
            f"{info['scales_present']} of {info['scales_total']} present,"
            f" {info['tokens_present']} of {info['tokens_total']} tokens",
        ),
        ("schedule", " ".join(map(str, info["schedule"]))),
        ("center", ", ".join(f"{c:.7g}" for c in info["center"])),
        ("scale", f"{info['scale']:.7g}"),
        ("flags", f"0x{info['flags']:02x}"),
    ]
    if info.get("scale_bytes"):
        rows.append(("coded scales", " ".join(map(str, info["scale_bytes"])) + " B"))
    if info.get("fscore") is not None:
        rows.append(("F-score", f"{info['fscore']:.4f}"))
    for tag, value in info["extensions"].items():
        shown = value if len(value) <= 32 else value[:32] + "..."
        rows.append((f"extension {tag}", f"{len(value) // 2} B: {shown}"))
    return rows


@command("info")
def info(
    file: Annotated[str, typer.Argument(metavar="FILE.vat", help="A .vat file; '-' reads stdin.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the fields as JSON.")] = False,
) -> None:
    """Validate a .vat file and show its header: sizes, model id, schedule, transform."""
    from vatcodec.bitstream import header_info
    from vatcodec.fileio import read_input_bytes

    fields = header_info(read_input_bytes(file))
    if as_json:
        print(json.dumps(fields, indent=2))
        return
    table = Table(title=file if file != "-" else "(stdin)", show_header=False, box=None)
    table.add_column(style="bold cyan")
    table.add_column()
    for name, value in _info_rows(fields):
        table.add_row(name, Text(value))  # Text: file content must never be parsed as markup
    console.print(table)


# --- encode / decode ----------------------------------------------------------------------------


ModelOption = Annotated[
    str | None,
    typer.Option("--model", metavar="PATH", help="Checkpoint to use instead of the shipped default model."),
]


class _LazyBar:
    """A progress bar on stderr that appears only once the work has taken more than a second."""

    DELAY_S = 1.0

    def __init__(self):
        import time

        self._clock = time.monotonic
        self._start = self._clock()
        self._bar = self._task = None
        self._console = Console(stderr=True)

    def __call__(self, fraction: float, what: str) -> None:
        if self._bar is None:
            if not self._console.is_terminal or self._clock() - self._start < self.DELAY_S:
                return
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
            self._bar = Progress(*columns, console=self._console, transient=True)
            self._bar.start()
            self._task = self._bar.add_task(what, total=1.0)
        self._bar.update(self._task, completed=fraction, description=what)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _encode_one_file(mesh: str, output: str, options: dict) -> None:
    import warnings

    from vatcodec.bitstream import header_info
    from vatcodec.codec import QualityWarning, encode
    from vatcodec.fileio import atomic_write_bytes

    bar = _LazyBar()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", QualityWarning)
            data = encode(mesh, progress=bar, **options)
    finally:
        bar.close()
    atomic_write_bytes(output, data)
    for w in caught:
        if issubclass(w.category, QualityWarning):  # one line on stderr; the file is written all the same
            typer.echo(f"warning: {' '.join(str(w.message).split())}", err=True)
        else:  # anything else keeps Python's usual display
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if output != "-":  # stdout carries the file itself
        info = header_info(data)
        fscore = "" if info.get("fscore") is None else f", F-score {info['fscore']:.4f}"
        console.print(
            Text(
                f"{output}: {len(data)} bytes, {info['scales_present']} of {info['scales_total']} scales,"
                f" {info['coder']}{fscore}"
            ),
            soft_wrap=True,
        )


def _encode_batch(meshes: list[str], out_dir: str, jobs: int, options: dict) -> None:
    from pathlib import Path

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vatcodec.codec import encode_many

    if out_dir == "-":
        fail("several inputs need -o FOLDER, not stdout")
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        fail(f"-o {out_dir}: several inputs need a folder, and this is a file")
    # Name clashes, bad options and an unusable model fail here, before the folder is created.
    results = encode_many(meshes, folder, jobs=jobs, **options)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"cannot create folder {out_dir}: {exc.strerror or exc}")
    err_console = Console(stderr=True)
    columns = (TextColumn("encoding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    failed = 0
    with Progress(*columns, console=err_console, transient=True, disable=not err_console.is_terminal) as bar:
        task = bar.add_task("encode", total=len(meshes))
        for result in results:
            if result.warning:
                line = f"warning: {result.source}: {result.warning}"
                if err_console.is_terminal:
                    bar.console.print(Text(line), soft_wrap=True)
                else:
                    typer.echo(line, err=True)
            if not result.ok:
                failed += 1
                line = f"error: {result.source}: {result.error}"
                if err_console.is_terminal:
                    bar.console.print(Text(line), soft_wrap=True)
                else:
                    typer.echo(line, err=True)
            bar.advance(task)
    console.print(
        Text(f"encoded {len(meshes) - failed} of {len(meshes)} files into {out_dir}"), soft_wrap=True
    )
    if failed:
        raise typer.Exit(EXIT_USER_ERROR)


@command("encode")
def encode_cmd(
    meshes: Annotated[
        list[str], typer.Argument(metavar="MESH", help="Mesh files (.obj .ply .stl .off .glb .gltf).")
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            metavar="OUT",
            help="The .vat file ('-' for stdout), or a folder for several inputs.",
        ),
    ],
    scales: Annotated[
        int | None, typer.Option("--scales", metavar="N", help="Keep only the first N (coarsest) scales.")
    ] = None,
    max_bytes: Annotated[
        int | None,
        typer.Option("--max-bytes", metavar="B", help="Keep the most scales whose file fits in B bytes."),
    ] = None,
    coder: Annotated[
        str,
        typer.Option(
            "--coder",
            metavar="auto|raw|zstd|range",
            help="Payload coder; auto picks the smallest the model supports (range needs its entropy tables).",
        ),
    ] = "auto",
    effort: Annotated[
        int,
        typer.Option(
            "--effort",
            "-e",
            metavar="0-3",
            help="0: one encoder pass. 1-3: refine the tokens through the decoder against the shape's own"
            " occupancy (vat-s, one busy core: about 4, 15, 40 s per mesh); never a worse occupancy fit.",
        ),
    ] = 0,
    time_limit: Annotated[
        float | None,
        typer.Option(
            "--time-limit",
            metavar="S",
            help="Stop refining after S seconds per file and keep the best tokens so far (the bytes then"
            " depend on the machine's speed).",
        ),
    ] = None,
    quality: Annotated[
        float | None,
        typer.Option(
            "--quality",
            metavar="F",
            help="Write the smallest prefix whose F-score against the input (tau 0.01, decoded at 256, measured"
            " by the encoder and recorded in the header) is at least F, by bisection; if even the largest file"
            " does not reach F, write that one and print a one-line warning (exit 0).",
        ),
    ] = None,
    seed: Annotated[
        int,
        typer.Option("--seed", metavar="N", help="Seed of all sampling; the same seed gives the same bytes."),
    ] = 0,
    jobs: Annotated[int, typer.Option("--jobs", "-j", metavar="J", help="Encode J files at once.")] = 1,
    model: ModelOption = None,
) -> None:
    """Compress meshes into .vat files; the same input always gives the same bytes."""
    from pathlib import Path

    options = {
        "model": model,
        "scales": scales,
        "max_bytes": max_bytes,
        "coder": coder,
        "effort": effort,
        "time_limit": time_limit,
        "quality": quality,
        "seed": seed,
    }
    if len(meshes) == 1 and not Path(output).is_dir():
        _encode_one_file(meshes[0], output, options)
    else:
        _encode_batch(meshes, output, jobs, options)


@command("decode")
def decode_cmd(
    file: Annotated[str, typer.Argument(metavar="IN.vat", help="A .vat file; '-' reads stdin.")],
    output: Annotated[
        str,
        typer.Option("--output", "-o", metavar="OUT", help="Output mesh: .obj, .ply, .stl, .glb or .off."),
    ],
    resolution: Annotated[
        int, typer.Option("--resolution", "-r", metavar="R", help="Marching-cubes cells per axis.")
    ] = 256,
    scales: Annotated[
        int | None, typer.Option("--scales", metavar="N", help="Decode only the first N scales (coarser).")
    ] = None,
    faces: Annotated[
        int | None, typer.Option("--faces", metavar="F", help="Decimate the mesh to about F triangles.")
    ] = None,
    model: ModelOption = None,
) -> None:
    """Reconstruct a mesh from a .vat file, in its original position and size."""
    from pathlib import Path

    from vatcodec.codec import decode
    from vatcodec.fileio import read_input_bytes
    from vatcodec.mesh_io import SAVE_SUFFIXES, save_mesh

    # Check the destination first: decoding takes seconds, and its result must not be thrown away.
    target = Path(output)
    if output == "-" or target.suffix.lower() not in SAVE_SUFFIXES:
        fail(f"-o {output}: the output needs a mesh suffix ({' '.join(SAVE_SUFFIXES)})")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        fail(f"cannot write {output}: directory {parent} does not exist")
    mesh = decode(read_input_bytes(file), model=model, scales=scales, resolution=resolution, faces=faces)
    save_mesh(mesh, target)
    console.print(Text(f"{output}: {len(mesh.vertices)} vertices, {len(mesh.faces)} faces"), soft_wrap=True)


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
        str | None, typer.Option("--budgets", metavar="B,..", help="Baseline byte budgets [256..8192].")
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
        limit=limit,
        gallery=gallery,
        plots=plots,
        quick=quick,
    )
    if quick and not prefixes:
        opts.prefixes = (2, 4, 6, 8, 10)
    if quick and resolution == 256:
        opts.resolution = 128
    if quick:
        opts.gallery = min(gallery, 1)
    print_table(run_bench(opts, progress=console.is_terminal), console)
    console.print(
        Text(f"wrote {output}/results.json, per_mesh.csv, summary.csv, plots and gallery"), soft_wrap=True
    )


# Commands that live in their own modules register themselves on import (they use `command` above).
from vatcodec import cli_generate  # noqa: E402, F401
