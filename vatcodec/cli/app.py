"""The `vatcodec` Typer app and what every command shares: error handling, `--model`, the progress bar.

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
import os
import sys
from collections.abc import Callable
from typing import Annotated, NoReturn

import typer
from rich.console import Console

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
        from vatcodec.codec.bitstream import FORMAT_MAJOR, FORMAT_MINOR

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


ModelOption = Annotated[
    str | None,
    typer.Option("--model", metavar="PATH", help="Checkpoint to use instead of the shipped default model."),
]


ThreadsOption = Annotated[
    int | None,
    typer.Option(
        "--threads",
        metavar="N",
        help="torch threads per process; default: OMP_NUM_THREADS, else the cores free right now (shared by --jobs).",
    ),
]


class LazyBar:
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
