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
