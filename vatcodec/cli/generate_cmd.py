"""The `vatcodec generate` command: image-conditioned sampling of new .vat files (registered by cli.py)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from vatcodec.cli.app import ModelOption, ThreadsOption, command, console
from vatcodec.generation.config import DEFAULT_CFG, DEFAULT_TEMPERATURE, DEFAULT_TOP_K, DEFAULT_TOP_P


@command("generate")
def generate_cmd(
    image: Annotated[
        str,
        typer.Option(
            "--image",
            "-i",
            metavar="IMG",
            help="Condition image: RGBA (alpha = object) or RGB on a plain background.",
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            metavar="OUT.vat",
            help="Output file; OUT-0.vat, OUT-1.vat, ... for several samples.",
        ),
    ],
    mesh: Annotated[
        str | None,
        typer.Option(
            "--mesh", metavar="MESH", help="Also decode each sample to this mesh (.obj .ply .stl .glb .off)."
        ),
    ] = None,
    num_samples: Annotated[
        int, typer.Option("--num-samples", "-n", metavar="N", help="Samples, drawn as one batch.")
    ] = 1,
    cfg: Annotated[
        float,
        typer.Option(
            "--cfg",
            metavar="S",
            help="Classifier-free guidance; grows linearly from 0 at the first scale to S.",
        ),
    ] = DEFAULT_CFG,
    top_k: Annotated[
        int,
        typer.Option("--top-k", metavar="K", help="Sample among the K likeliest tokens (0: all; 1: greedy)."),
    ] = DEFAULT_TOP_K,
    top_p: Annotated[
        float, typer.Option("--top-p", metavar="P", help="Nucleus sampling mass (1: off).")
    ] = DEFAULT_TOP_P,
    temperature: Annotated[
        float, typer.Option("--temperature", "-t", metavar="T", help="Softmax temperature (0: greedy).")
    ] = DEFAULT_TEMPERATURE,
    seed: Annotated[
        int,
        typer.Option("--seed", metavar="K", help="The same seed, options and device give the same files."),
    ] = 0,
    device: Annotated[
        str,
        typer.Option(
            "--device", metavar="auto|cpu|cuda", help="Where to sample; auto uses a GPU when there is one."
        ),
    ] = "auto",
    resolution: Annotated[
        int, typer.Option("--resolution", "-r", metavar="R", help="Marching-cubes resolution of --mesh.")
    ] = 128,
    generator: Annotated[
        str | None,
        typer.Option(
            "--generator", metavar="PATH", help="Generator checkpoint (default: the shipped gen-s)."
        ),
    ] = None,
    dino: Annotated[
        str | None,
        typer.Option(
            "--dino", metavar="DIR", help="Local DINOv2 folder, for generators trained with DINOv2."
        ),
    ] = None,
    threads: ThreadsOption = None,
    model: ModelOption = None,
) -> None:
    """Sample new shapes for an image as .vat files (decodable by `vatcodec decode`)."""
    from vatcodec.generation.generate import generate_to_files
    from vatcodec.threads import use_threads

    use_threads(threads)

    rows = generate_to_files(
        image, output, mesh=mesh, resolution=resolution, tokenizer=model, model=generator, num_samples=num_samples,
        cfg_scale=cfg, top_k=top_k, top_p=top_p, temperature=temperature, seed=seed, device=device, dino_path=dino,
    )  # fmt: skip
    for row in rows:
        line = f"{row['vat']}: {row['bytes']} B"
        if row["mesh"]:
            line += f"; {row['mesh']}: {row['faces']} faces"
        elif mesh is not None:
            line += "; empty shape, no mesh written"
        console.print(Text(line), soft_wrap=True)
