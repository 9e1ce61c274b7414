"""`vatcodec view`: write (and open) the HTML page that shows every scale prefix of a .vat file."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from vatcodec.cli.app import LazyBar, ModelOption, ThreadsOption, command, console, fail


@command("view")
def view_cmd(
    file: Annotated[str, typer.Argument(metavar="FILE.vat", help="A .vat file; '-' reads stdin.")],
    original: Annotated[
        str | None,
        typer.Option("--original", metavar="MESH", help="The original mesh: shown beside, and F per prefix."),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            metavar="PAGE.html",
            help="Where to write the page; default: a temporary file, opened in the web browser.",
        ),
    ] = None,
    resolution: Annotated[
        int,
        typer.Option("--resolution", "-r", metavar="R", help="Marching-cubes cells per axis of each decode."),
    ] = 128,
    faces: Annotated[
        int, typer.Option("--faces", metavar="F", help="Decimate each shown mesh to at most about F faces.")
    ] = 50_000,
    threads: ThreadsOption = None,
    model: ModelOption = None,
) -> None:
    """Write one self-contained HTML page: each scale prefix decoded, with its bytes (and F-score)."""
    import os
    import tempfile
    import webbrowser
    from pathlib import Path

    from vatcodec.threads import use_threads
    from vatcodec.views.page import write_view_page

    if output is not None:
        target = Path(output)
        parent = target.parent if str(target.parent) else Path(".")
        if output == "-" or target.suffix.lower() not in (".html", ".htm"):
            fail(f"-o {output}: the page needs an .html name")
        if not parent.is_dir():
            fail(f"cannot write {output}: directory {parent} does not exist")
    else:
        stem = "stdin" if file == "-" else Path(file).stem
        target = Path(tempfile.gettempdir()) / f"vatcodec-view-{stem}-{os.getpid()}.html"
    use_threads(threads)
    bar = LazyBar()
    try:
        done = write_view_page(
            file, target, original=original, resolution=resolution, faces=faces, model=model, progress=bar
        )
    finally:
        bar.close()
    n = len(done["prefixes"])
    console.print(
        Text(f"{target}: {done['page_bytes']} bytes, {n} prefixes, written in {done['seconds']:.1f} s"),
        soft_wrap=True,
    )
    if output is None:
        webbrowser.open(target.resolve().as_uri())
