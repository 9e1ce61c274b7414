"""vatcodec: a neural codec for 3D shapes built on the Variational Tokenizer (arXiv 2412.02202)."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["__version__", "decode", "encode"]

if TYPE_CHECKING:
    from vatcodec.codec import decode, encode


def __getattr__(name: str):
    # The codec pulls in torch and trimesh; import it on first use so `import vatcodec` stays light.
    if name in ("encode", "decode"):
        from vatcodec import codec

        globals()[name] = getattr(codec, name)
        return globals()[name]
    raise AttributeError(f"module 'vatcodec' has no attribute {name!r}")
