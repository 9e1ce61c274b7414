"""Token streams to bytes with the smallest coder a model can use (`pack_smallest`), and re-coding a file (`recode`)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from vatcodec.codec.bitstream import (
    CODER_MINOR,
    CODERS,
    CUT_MINOR,
    EXT_LEVEL,
    EXT_MINOR,
    FORMAT_MAJOR,
    VatFile,
    header_info,
    pack,
)
from vatcodec.codec.decoding import _check_file_matches, unpack_for
from vatcodec.codec.models import file_model_id, model_for_file, model_id_of, prior_of, tables_of
from vatcodec.errors import VatError

if TYPE_CHECKING:
    from vatcodec.model.tokenizer import VAT

CODER_CHOICES = ("auto", *CODERS)


def pack_smallest(vat: VatFile, coder: str, net: VAT) -> bytes:
    """The smallest file of these fields among the coders `coder` allows ("auto": every coder the model can use)."""
    if vat.completed:  # a cut, completed stream is the context coder's alone
        coders = ["context"]
    elif coder == "auto":  # every coder the model can use; ties go to the first (raw needs no decompressor)
        coders = ["raw", "zstd"] + (["range"] if tables_of(net) is not None else [])
        coders += ["context"] if prior_of(net) is not None else []
    else:
        coders = [coder]
    files = []
    ext_minor = max((EXT_MINOR.get(tag, 0) for tag in vat.extensions), default=0)
    for c in coders:  # the id of what decoding needs, and the lowest format version that defines what it uses
        cut_minor = CUT_MINOR if vat.completed else 0
        version = (FORMAT_MAJOR, max(vat.version[1], CODER_MINOR[c], ext_minor, cut_minor))
        fields = dataclasses.replace(vat, coder=c, model_id=file_model_id(net, c), version=version)
        files.append(pack(fields, tables=tables_of(net), prior=prior_of(net) if c == "context" else None))
    return min(files, key=len)


def check_options(net: VAT, scales: int | None, max_bytes: int | None, coder: str) -> None:
    """Raise a one-line VatError for a coder, prefix or budget this model cannot write."""
    cfg = net.cfg
    if coder not in CODER_CHOICES:
        raise VatError(f"unknown coder {coder!r} (choose from {', '.join(CODER_CHOICES)})")
    if coder == "range" and tables_of(net) is None:
        raise VatError(
            f"the range coder needs entropy tables, and model {model_id_of(net).hex()} has none"
            " (add them with python -m training.token_stats)"
        )
    if coder == "context" and prior_of(net) is None:
        raise VatError(f"the context coder needs a prior, and model {model_id_of(net).hex()} has none")
    total = len(cfg.schedule)
    if scales is not None and not 1 <= scales <= total:
        raise VatError(f"scales must be in 1..{total} for this model, got {scales}")
    if max_bytes is not None and max_bytes < 1:
        raise VatError(f"max bytes must be positive, got {max_bytes}")


def recode(data: bytes, *, model=None, coder: str = "auto", scales: int | None = None) -> bytes:
    """Re-code a .vat file's tokens with another coder and/or keep a prefix of its scales.

    The mesh is not encoded again: the indices stay identical, only the payload coding (and, for the range coder,
    the model id) change. Extensions are kept, but for the surface level when scales are cut (it was chosen for
    the full stream). A completed file (coder 4) stays completed under the context coder; another coder takes
    only its whole scales, and then the decoder no longer completes them.

    Raises:
        BitstreamError: the bytes are not a valid .vat file.
        VatError: the file was written by another model, or bad options.
    """
    info = header_info(data)
    net = model_for_file(info, model)
    _check_file_matches(info, net)
    check_options(net, scales, None, coder)
    vat = unpack_for(data, net)
    keep = min(scales or vat.num_scales, vat.num_scales)
    extensions = dict(vat.extensions)
    if keep < vat.num_scales:  # the surface level was chosen for the full stream, not for a prefix
        extensions.pop(EXT_LEVEL, None)
    indices, completed = list(vat.indices[:keep]), vat.completed
    if completed and coder not in ("auto", "context"):
        if keep == vat.num_scales:
            raise VatError(
                f"this file's last scale is cut, which only the context coder holds: use --coder context,"
                f" or keep {keep - 1} scales"
            )
        completed = False  # whole scales: any coder holds them, and the decoder no longer completes them
    elif completed and keep < vat.num_scales:  # the last kept scale is whole: it goes into coding order
        from vatcodec.codec.completion import in_coding_order

        indices = in_coding_order(net, indices)
    return pack_smallest(
        dataclasses.replace(vat, indices=indices, extensions=extensions, completed=completed), coder, net
    )
