"""Image-conditioned generation as a library call: condition images in, .vat files (and meshes) out."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from vatcodec.errors import VatError
from vatcodec.generation.config import DEFAULT_CFG, DEFAULT_TEMPERATURE, DEFAULT_TOP_K, DEFAULT_TOP_P  # noqa: F401

DEFAULT_GENERATOR_NAME = "gen-s.safetensors"


def default_generator_path() -> Path:
    return Path(__file__).resolve().parents[1] / "weights" / DEFAULT_GENERATOR_NAME


def resolve_device(device: str) -> torch.device:
    """'auto' picks CUDA when there is one; asking for CUDA without one is an error, not a silent fallback."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise VatError("--device cuda: no CUDA GPU is available (use --device cpu or auto)")
    if device not in ("cpu", "cuda"):
        raise VatError(f"unknown device {device!r} (choose auto, cpu or cuda)")
    return torch.device(device)


@functools.lru_cache(maxsize=2)
def _load_cached(path: str, mtime_ns: int, dino: str | None, device: str):
    from vatcodec.generation.checkpoint import load_generator

    return load_generator(path, dino_path=dino, device=device)


def get_generator(path=None, dino_path=None, device: str | torch.device = "cpu"):
    """The generator of a checkpoint (the shipped one when `path` is None), loaded once per process."""
    path = Path(path) if path is not None else default_generator_path()
    if not path.is_file():
        raise VatError(f"generator checkpoint not found: {path}")
    return _load_cached(
        str(path.resolve()), path.stat().st_mtime_ns, dino_path and str(dino_path), str(device)
    )


def condition_images(images: Sequence, size: int) -> torch.Tensor:
    """Paths or uint8 arrays -> prepared (B, 3, size, size) tensors (see `vatcodec.generation.image_input`)."""
    from vatcodec.generation.image_input import load_image, prepare_image, to_tensor

    prepared = []
    for img in images:
        arr = load_image(img) if isinstance(img, (str, os.PathLike)) else np.asarray(img)
        if arr.dtype != np.uint8:
            raise VatError(f"condition images must be uint8 RGB(A) arrays, got dtype {arr.dtype}")
        prepared.append(prepare_image(arr, size))
    return to_tensor(np.stack(prepared))


def generate(
    images: Sequence,
    *,
    model=None,
    tokenizer=None,
    num_samples: int = 1,
    cfg_scale: float = DEFAULT_CFG,
    top_k: int = DEFAULT_TOP_K,
    top_p: float = DEFAULT_TOP_P,
    temperature: float = DEFAULT_TEMPERATURE,
    seed: int = 0,
    device: str = "auto",
    dino_path=None,
) -> list[bytes]:
    """Samples shapes for condition images and returns them as .vat files (unit cube: centre 0, scale 1).

    All samples of all images run as one batch. The same images, options, seed and device give the same files.

    Args:
        images: image paths or uint8 (H, W, 3|4) arrays.
        model: a NextScaleGenerator, a generator checkpoint path, or None for the shipped one.
        tokenizer: the VAT whose tokens the generator predicts (a VAT, a checkpoint path, or None for the shipped
            one); the files carry its model id, so `vatcodec decode` needs the same tokenizer.
        num_samples: samples per image.
        cfg_scale, top_k, top_p, temperature: see `NextScaleGenerator.sample`.

    Returns:
        len(images) * num_samples files, image-major (all samples of image 0 first).
    """
    from vatcodec import codec
    from vatcodec.codec.bitstream import VatFile, index_bits_for

    if not images:
        raise VatError("no condition image given")
    if num_samples < 1:
        raise VatError(f"--num-samples must be >= 1, got {num_samples}")
    if cfg_scale < 0 or temperature < 0 or top_k < 0 or not 0 < top_p <= 1:
        raise VatError("need cfg >= 0, temperature >= 0, top-k >= 0 and 0 < top-p <= 1")
    dev = resolve_device(device)
    gen = model if hasattr(model, "sample") else get_generator(model, dino_path, dev)
    gen = gen.to(dev).eval()
    if tokenizer is None and gen.cfg.tokenizer_id:
        # The shipped generator may predict the tokens of an earlier shipped tokenizer than the default one.
        from vatcodec.codec.models import bundled_model_for

        tokenizer = bundled_model_for(gen.cfg.tokenizer_id)
    net = codec.resolve_model(tokenizer)
    tok_id = bytes(codec.model_id_of(net)).hex()
    if gen.cfg.tokenizer_id and gen.cfg.tokenizer_id != tok_id:
        raise VatError(
            f"the generator predicts tokens of tokenizer {gen.cfg.tokenizer_id}, but the tokenizer given is {tok_id}"
        )
    images_B3HW = condition_images(images, gen.cfg.image_size).to(dev)
    images_B3HW = images_B3HW.repeat_interleave(num_samples, dim=0)
    rng = torch.Generator(device=dev).manual_seed(seed)
    with torch.inference_mode():
        cond_BD = gen.condition(images_B3HW)
        out = gen.sample(cond_BD, cfg_scale, top_k=top_k, top_p=top_p, temperature=temperature, generator=rng)
    cfg = net.cfg
    files = []
    for b in range(images_B3HW.shape[0]):
        vat = VatFile(
            model_id=codec.model_id_of(net),
            codebook_size=cfg.codebook_size,
            index_bits=index_bits_for(cfg.codebook_size),
            schedule=tuple(cfg.schedule),
            indices=[idx[b].cpu().numpy().astype(np.int64) for idx in out["indices"]],
        )
        files.append(codec.pack_smallest(vat, "auto", net))
    return files


def numbered(path: str | os.PathLike, i: int, n: int) -> Path:
    """`out.vat` itself for one output, else `out-0.vat`, `out-1.vat`, ..."""
    path = Path(path)
    return path if n == 1 else path.with_name(f"{path.stem}-{i}{path.suffix}")


def generate_to_files(
    image,
    output: str | os.PathLike,
    *,
    mesh: str | os.PathLike | None = None,
    resolution: int = 128,
    tokenizer=None,
    **options,
) -> list[dict]:
    """`vatcodec generate`: samples for one image, written as OUT.vat (OUT-i.vat for several) and meshes.

    Outputs are checked before sampling and written atomically; every .vat file is written, and a mesh for every
    sample whose shape is not empty. Returns one {"vat", "bytes", "mesh", "faces"} dict per sample ("mesh" is
    None when the sample decoded to nothing or no mesh was asked for).
    """
    from vatcodec import codec
    from vatcodec.errors import EmptyShapeError
    from vatcodec.fileio import atomic_write_bytes
    from vatcodec.geometry.mesh_io import SAVE_SUFFIXES, save_mesh

    if not codec.MIN_RESOLUTION <= resolution <= codec.MAX_RESOLUTION:
        raise VatError(
            f"resolution must be in {codec.MIN_RESOLUTION}..{codec.MAX_RESOLUTION}, got {resolution}"
        )
    out = Path(output)
    for path, what in ((out, "-o"), (Path(mesh) if mesh else None, "--mesh")):
        if path is None:
            continue
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir():
            raise VatError(f"cannot write {path}: directory {parent} does not exist")
        if path.is_dir():
            raise VatError(f"{what} {path} is a directory; give a file name")
    if out.suffix.lower() != ".vat":
        raise VatError(f"-o {out}: the output needs the .vat suffix")
    if mesh is not None and Path(mesh).suffix.lower() not in SAVE_SUFFIXES:
        raise VatError(f"--mesh {mesh}: the mesh needs a suffix among {' '.join(SAVE_SUFFIXES)}")
    files = generate([image], tokenizer=tokenizer, **options)
    meshes = []
    for data in files if mesh is not None else []:
        try:
            meshes.append(codec.decode(data, model=tokenizer, resolution=resolution))
        except EmptyShapeError:  # its .vat is still valid, it just has no surface
            meshes.append(None)
    rows = []
    for i, data in enumerate(files):
        vat_path = numbered(out, i, len(files))
        atomic_write_bytes(vat_path, data)
        row = {"vat": str(vat_path), "bytes": len(data), "mesh": None, "faces": 0}
        if meshes and meshes[i] is not None:
            mesh_path = numbered(mesh, i, len(files))
            save_mesh(meshes[i], mesh_path)
            row |= {"mesh": str(mesh_path), "faces": len(meshes[i].faces)}
        rows.append(row)
    return rows
