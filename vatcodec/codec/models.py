"""Which model a codec call uses: the shipped default or a checkpoint, loaded once; its ids and tables."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

from vatcodec.errors import VatError

if TYPE_CHECKING:
    import torch
    import trimesh

    from vatcodec.model.tokenizer import VAT

# Files of the earlier defaults (vat-s, vat-tp) still decode: the package ships them (`model_for_file`).
DEFAULT_MODEL_NAME = "vat-tp2.safetensors"


def weights_dir() -> Path:
    """The package folder of the shipped checkpoints."""
    return Path(__file__).resolve().parents[1] / "weights"


def default_model_path() -> Path:
    """Where the shipped default model lives inside the package."""
    return weights_dir() / DEFAULT_MODEL_NAME


def _file_ids(path: Path) -> tuple[str, ...]:
    """The ids (model id, entropy id, context id) a tokenizer checkpoint's files may carry, from headers alone."""
    import json
    import struct

    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            meta = json.loads(f.read(min(n, 1 << 24))).get("__metadata__", {})
    except (OSError, ValueError, struct.error):
        return ()
    if not str(meta.get("format", "")).startswith("vatcodec-tokenizer"):
        return ()
    ids = tuple(meta[k] for k in ("model_id", "entropy_id") if k in meta)
    prior = _bundled_priors().get(meta.get("model_id", ""))
    return ids + ((context_id(bytes.fromhex(meta["model_id"]), prior[1]).hex(),) if prior else ())


def bundled_model_for(file_id: str) -> Path | None:
    """The shipped tokenizer whose files carry `file_id` (hex), so files of an earlier default still decode."""
    default = default_model_path()
    for path in [default, *sorted(p for p in weights_dir().glob("*.safetensors") if p != default)]:
        if file_id in _file_ids(path):
            return path
    return None


def model_for_file(info: dict, model, device: str | None = None) -> VAT:
    """`resolve_model` for decoding a file: with no model given, the shipped one that wrote it (else the default)."""
    if model is None:
        model = bundled_model_for(info["model_id"])
    return resolve_model(model, device)


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, mtime_ns: int, size: int, device: str = "cpu") -> VAT:
    # mtime and size are in the key so a checkpoint rewritten in place is loaded again.
    from vatcodec.model.checkpoint import load_model

    net = load_model(path)
    return net if device == "cpu" else net.to(device)


DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | None) -> str:
    """'cpu' or 'cuda' for a `--device` value: auto picks a CUDA GPU when torch sees one.

    Raises:
        VatError: an unknown name, or cuda without a CUDA GPU.
    """
    import torch

    device = (device or "cpu").lower()
    if device not in DEVICES:
        raise VatError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise VatError(f"--device cuda: torch {torch.__version__} sees no CUDA GPU; use --device cpu")
    return device


def clear_model_cache() -> None:
    """Forget every loaded model, so that the next `get_model` reads its checkpoint again."""
    _load_cached.cache_clear()


def get_model(path: str | os.PathLike | None = None, device: str = "cpu") -> VAT:
    """The model of a checkpoint (the shipped default when `path` is None), loaded once per process and device.

    `path` may also name a bundled model (`vat-tp`, `vat-tp2q`: a file of `vatcodec/weights/` without its suffix).

    Raises:
        VatError: the checkpoint is missing or unreadable.
    """
    if path is None:
        path = default_model_path()
        if not path.is_file():
            raise VatError(f"the default model is missing ({path}); pass a checkpoint with --model PATH")
    path = Path(path)
    if not path.exists() and (weights_dir() / f"{path}.safetensors").is_file():  # a bundled model by name
        path = weights_dir() / f"{path}.safetensors"
    try:
        st = path.resolve().stat()
    except OSError:
        raise VatError(f"model checkpoint not found: {path}") from None
    return _load_cached(str(path.resolve()), st.st_mtime_ns, st.st_size, device)


def resolve_model(model, device: str | None = None) -> VAT:
    """A VAT for a codec call: `model` itself, or the checkpoint it names (None: the shipped one) on `device`."""
    if model is None or isinstance(model, (str, os.PathLike)):
        return get_model(model, resolve_device(device))
    if not hasattr(model, "cfg") or not callable(getattr(model, "encode", None)):
        raise TypeError(f"model must be a VAT, a checkpoint path or None, got {type(model).__name__}")
    return model


def device_of(model) -> torch.device:
    """The device of a model's parameters (the CPU for a model-like object without any)."""
    import torch

    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


def model_id_of(model: VAT) -> bytes:
    ident = getattr(model, "model_id", None)
    if ident is None:  # a model built in memory rather than loaded: hash it as a checkpoint would
        from vatcodec.model.checkpoint import model_id

        ident = model_id(model.cfg, model.state_dict())
    return bytes(ident)


def tables_of(model: VAT):
    """The model's entropy tables `freq_SK`, or None (old checkpoints, test models)."""
    return getattr(model, "entropy_freq_SK", None)


PRIOR_SUFFIX = "-prior.safetensors"  # a shipped context prior: a generator checkpoint beside its tokenizer
_CONTEXT_DOMAIN = b"vatcodec context prior v1"


@functools.lru_cache(maxsize=1)
def _bundled_priors() -> dict[str, tuple[Path, str]]:
    """Tokenizer model id (hex) -> (path, generator id) of each shipped prior, from the files' headers alone."""
    import json
    import struct

    found = {}
    for path in sorted(weights_dir().glob("*" + PRIOR_SUFFIX)):
        try:
            with open(path, "rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                meta = json.loads(f.read(min(n, 1 << 24))).get("__metadata__", {})
            found[json.loads(meta["config"])["tokenizer_id"]] = (path, meta["generator_id"])
        except (OSError, ValueError, KeyError, struct.error):
            continue
    return found


def context_id(tokenizer_id: bytes, generator_id: str) -> bytes:
    """The id a context-coded file carries: the decoder's id bound to the prior's (SPEC 5.2)."""
    import hashlib

    return hashlib.sha256(_CONTEXT_DOMAIN + bytes(tokenizer_id) + bytes.fromhex(generator_id)).digest()[:8]


def set_prior(model: VAT, prior) -> VAT:
    """Give a model a `ContextPrior` (or take it away with None), instead of the shipped one for its id."""
    model.context_prior = prior
    return model


def prior_of(model: VAT):
    """The model's `ContextPrior`: one set with `set_prior`, else the shipped one for its id (loaded once), or None."""
    if not hasattr(model, "context_prior"):
        found = _bundled_priors().get(model_id_of(model).hex())
        prior = None
        if found is not None:
            from vatcodec.codec.context import ContextPrior
            from vatcodec.generation.checkpoint import load_generator

            prior = ContextPrior(load_generator(found[0]))
        model.context_prior = prior
    return model.context_prior


def file_model_id(model: VAT, coder: str) -> bytes:
    """The id a file carries: the decoder's, bound to its tables (range coder) or to its prior (context coder).

    Raw and zstd files do not depend on the tables, so giving a model tables keeps its raw/zstd files valid.
    """
    if coder == "context":
        prior = prior_of(model)
        if prior is None:
            raise VatError("this model has no context prior: use --coder range, zstd or raw")
        return context_id(model_id_of(model), prior.generator_id)
    if coder != "range":
        return model_id_of(model)
    ident = getattr(model, "entropy_id", None)
    if ident is None:
        from vatcodec.codec.entropy import tables_id

        tables = tables_of(model)
        if tables is None:
            raise VatError("this model has no entropy tables: use --coder zstd or raw")
        ident = tables_id(model_id_of(model), tables)
    return bytes(ident)


def as_mesh(mesh_or_path, max_faces: int | None = None) -> trimesh.Trimesh:
    """A validated mesh from a path (refused above `max_faces`; None: mesh_io's default) or a Trimesh."""
    import trimesh

    from vatcodec.geometry.mesh_io import DEFAULT_MAX_FACES, load_mesh, validate_mesh

    if isinstance(mesh_or_path, (str, os.PathLike)):
        return load_mesh(mesh_or_path, DEFAULT_MAX_FACES if max_faces is None else max_faces or None)
    if isinstance(mesh_or_path, trimesh.Trimesh):
        validate_mesh(mesh_or_path)
        return mesh_or_path
    raise TypeError(f"expected a mesh file path or a trimesh.Trimesh, got {type(mesh_or_path).__name__}")
