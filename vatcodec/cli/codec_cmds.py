"""`vatcodec info`, `encode` and `decode`: thin commands over `vatcodec.codec`."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from vatcodec.cli.app import EXIT_USER_ERROR, LazyBar, ModelOption, ThreadsOption, command, console, fail

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
            f" {info['tokens_present']} of {info['tokens_total']} tokens"
            + (", the rest completed by the prior" if info.get("completed") else ""),
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
    if info.get("level_offset") is not None:
        rows.append(("surface level", f"{info['level_offset']:+g} logit from the model's (full stream)"))
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
    from vatcodec.codec.bitstream import header_info
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


def _encode_one_file(mesh: str, output: str, options: dict) -> None:
    import warnings

    from vatcodec.codec import EncodeWarning, encode
    from vatcodec.codec.bitstream import header_info
    from vatcodec.fileio import atomic_write_bytes

    bar = LazyBar()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", EncodeWarning)
            data = encode(mesh, progress=bar, **options)
    finally:
        bar.close()
    atomic_write_bytes(output, data)
    for w in caught:
        if issubclass(w.category, EncodeWarning):  # one line on stderr; the file is written all the same
            typer.echo(f"warning: {' '.join(str(w.message).split())}", err=True)
        else:  # anything else keeps Python's usual display
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if output != "-":  # stdout carries the file itself
        info = header_info(data)
        fscore = "" if info.get("fscore") is None else f", F-score {info['fscore']:.4f}"
        console.print(
            Text(
                f"{output}: {len(data)} bytes, {info['tokens_present']} of {info['tokens_total']} tokens"
                f" ({info['scales_present']} of {info['scales_total']} scales"
                f"{', the rest completed' if info.get('completed') else ''}), {info['coder']}{fscore}"
            ),
            soft_wrap=True,
        )


def _batch_folder(out_dir: str, inputs: list[str]):
    """The output folder of a batch, checked before any work: not stdout, not a file."""
    from pathlib import Path

    if out_dir == "-" or "-" in inputs:
        fail("several inputs need -o FOLDER and files, not stdin or stdout")
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        fail(f"-o {out_dir}: several inputs need a folder, and this is a file")
    return folder


def _run_batch(results, total: int, folder, verb: str) -> None:
    """Create the folder, then report each result as it finishes (one line per warning or failure)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"cannot create folder {folder}: {exc.strerror or exc}")
    err_console = Console(stderr=True)
    columns = (TextColumn(f"{verb[:-1]}ing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    failed = 0
    with Progress(*columns, console=err_console, transient=True, disable=not err_console.is_terminal) as bar:
        task = bar.add_task(verb, total=total)
        for result in results:
            lines = (
                [f"warning: {result.source}: {result.warning}"] if getattr(result, "warning", None) else []
            )
            if not result.ok:
                failed += 1
                lines.append(f"error: {result.source}: {result.error}")
            for line in lines:
                if err_console.is_terminal:
                    bar.console.print(Text(line), soft_wrap=True)
                else:
                    typer.echo(line, err=True)
            bar.advance(task)
    console.print(Text(f"{verb}d {total - failed} of {total} files into {folder}"), soft_wrap=True)
    if failed:
        raise typer.Exit(EXIT_USER_ERROR)


def _encode_batch(meshes: list[str], out_dir: str, jobs: int, options: dict) -> None:
    from vatcodec.codec import encode_many

    folder = _batch_folder(out_dir, meshes)
    # Name clashes, bad options and an unusable model fail here, before the folder is created.
    results = encode_many(meshes, folder, jobs=jobs, **options)
    _run_batch(results, len(meshes), folder, "encode")


DeviceOption = Annotated[
    str,
    typer.Option(
        "--device",
        metavar="auto|cpu|cuda",
        help="Where the model runs; auto takes a CUDA GPU when torch sees one.",
    ),
]


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
        typer.Option(
            "--max-bytes",
            metavar="B",
            help="Keep the most tokens whose file fits in B bytes: whole scales, or with the context coder (the"
            " default when the model has a prior) to the token, the rest completed by the prior at decode.",
        ),
    ] = None,
    coder: Annotated[
        str,
        typer.Option(
            "--coder",
            metavar="auto|raw|zstd|range|context",
            help="Payload coder; auto picks the smallest the model supports (range needs its entropy tables,"
            " context its prior).",
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
            " depend on the machine's speed); with the level search, refining stops at 0.8 S and the search"
            " runs after it, starting no candidate level past S. Default for effort 1/2/3: 10/30/75 s; 0: no limit.",
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
    level_search: Annotated[
        bool | None,
        typer.Option(
            "--level-search/--no-level-search",
            help="Choose the surface level by quick F-scores against the input and store it in the file (3 bytes;"
            " +0.03 F on validation, a few seconds). Default: on for effort 1-3, off for effort 0.",
            show_default=False,
        ),
    ] = None,
    tries: Annotated[
        int,
        typer.Option(
            "--tries",
            metavar="K",
            help="Encode K samplings of the surface and keep the file whose decode scores best against the input"
            " (quick F-score; about 1 s a try; +0.02 F on validation with 8). Decoders need nothing more.",
        ),
    ] = 1,
    also_model: Annotated[
        list[str] | None,
        typer.Option(
            "--also-model",
            metavar="CKPT",
            help="Also encode with this model (a checkpoint or a bundled name such as vat-tp2q; repeatable) and keep"
            " the file whose decode scores best against the input. Decoders need the chosen model.",
        ),
    ] = None,
    seed: Annotated[
        int,
        typer.Option("--seed", metavar="N", help="Seed of all sampling; the same seed gives the same bytes."),
    ] = 0,
    jobs: Annotated[int, typer.Option("--jobs", "-j", metavar="J", help="Encode J files at once.")] = 1,
    max_faces: Annotated[
        int | None,
        typer.Option(
            "--max-faces",
            metavar="N",
            help="Refuse meshes with more faces, before parsing them (default 20,000,000: about 7 GB; 0: no limit).",
        ),
    ] = None,
    device: DeviceOption = "cpu",
    threads: ThreadsOption = None,
    model: ModelOption = None,
) -> None:
    """Compress meshes into .vat files; the same input always gives the same bytes."""
    from pathlib import Path

    from vatcodec.threads import choose_threads, use_threads

    options = {
        "model": model,
        "scales": scales,
        "max_bytes": max_bytes,
        "coder": coder,
        "effort": effort,
        "time_limit": time_limit,
        "quality": quality,
        "level_search": level_search,
        "tries": tries,
        "also_models": tuple(also_model or ()),
        "seed": seed,
        "device": device,
        "max_faces": max_faces,
    }
    if len(meshes) == 1 and not Path(output).is_dir():
        use_threads(threads)
        _encode_one_file(meshes[0], output, options)
    else:
        _encode_batch(meshes, output, jobs, {**options, "threads": choose_threads(threads, jobs)})


@command("decode")
def decode_cmd(
    files: Annotated[
        list[str], typer.Argument(metavar="IN.vat", help="One or more .vat files; '-' reads stdin.")
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            metavar="OUT",
            help="Output mesh (.obj .ply .stl .glb .off), or a folder for several inputs.",
        ),
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
    fmt: Annotated[
        str, typer.Option("--format", metavar="SUFFIX", help="Mesh format of a folder's files, e.g. .ply.")
    ] = ".obj",
    jobs: Annotated[int, typer.Option("--jobs", "-j", metavar="J", help="Decode J files at once.")] = 1,
    device: DeviceOption = "cpu",
    threads: ThreadsOption = None,
    model: ModelOption = None,
) -> None:
    """Reconstruct meshes from .vat files, in their original position and size."""
    from pathlib import Path

    from vatcodec.threads import choose_threads, use_threads

    options = {"resolution": resolution, "scales": scales, "faces": faces}
    if len(files) == 1 and not Path(output).is_dir():
        use_threads(threads)
        _decode_one_file(files[0], output, options, device, model)
    else:
        suffix = fmt if fmt.startswith(".") else "." + fmt
        options["threads"] = choose_threads(threads, jobs)
        _decode_batch(files, output, suffix, jobs, options, device, model)


def _decode_one_file(file: str, output: str, options: dict, device: str, model) -> None:
    from pathlib import Path

    from vatcodec.codec.decoding import decode_arrays
    from vatcodec.fileio import read_input_bytes
    from vatcodec.geometry.mesh_write import SAVE_SUFFIXES, write_mesh

    # Check the destination first: decoding takes seconds, and its result must not be thrown away.
    target = Path(output)
    if output == "-" or target.suffix.lower() not in SAVE_SUFFIXES:
        fail(f"-o {output}: the output needs a mesh suffix ({' '.join(SAVE_SUFFIXES)})")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        fail(f"cannot write {output}: directory {parent} does not exist")
    vertices_N3, faces_F3 = decode_arrays(read_input_bytes(file), model=model, device=device, **options)
    write_mesh(vertices_N3, faces_F3, target)
    console.print(Text(f"{output}: {len(vertices_N3)} vertices, {len(faces_F3)} faces"), soft_wrap=True)


def _decode_batch(
    files: list[str], out_dir: str, suffix: str, jobs: int, options: dict, device, model
) -> None:
    from vatcodec.codec.batch import decode_many

    folder = _batch_folder(out_dir, files)
    results = decode_many(files, folder, suffix=suffix, jobs=jobs, model=model, device=device, **options)
    _run_batch(results, len(files), folder, "decode")
