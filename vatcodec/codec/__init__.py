"""The codec: the .vat container, its entropy coder, shape extraction, encoder effort, and the encode/decode API.

The API names below load on first use, so that the container (`vatcodec.codec.bitstream`) imports without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from vatcodec.errors import EncodeWarning, QualityWarning, TimeLimitWarning  # no torch: imported eagerly

_API = {
    "DecodeResult": "batch",
    "EncodeResult": "batch",
    "batch_outputs": "batch",
    "decode_many": "batch",
    "encode_many": "batch",
    "MAX_RESOLUTION": "decoding",
    "MIN_RESOLUTION": "decoding",
    "QUALITY_RESOLUTION": "decoding",
    "decode": "decoding",
    "decode_arrays": "decoding",
    "measure_fscore": "decoding",
    "unpack_for": "decoding",
    "CODER_CHOICES": "packing",
    "EFFORT_LEVELS": "encoding",
    "TIGHT_BUDGET": "encoding",
    "DEFAULT_TIME_LIMITS": "encoding",
    "encode": "encoding",
    "choose_level": "level",
    "recode": "packing",
    "DEFAULT_MODEL_NAME": "models",
    "default_model_path": "models",
    "get_model": "models",
    "clear_model_cache": "models",
    "model_id_of": "models",
    "tables_of": "models",
    "prior_of": "models",
    "set_prior": "models",
    "resolve_model": "models",
    "bundled_model_for": "models",
    "model_for_file": "models",
    "resolve_device": "models",
    "pack_smallest": "packing",
}
__all__ = [
    "CODER_CHOICES",
    "DEFAULT_MODEL_NAME",
    "DecodeResult",
    "EFFORT_LEVELS",
    "EncodeResult",
    "MAX_RESOLUTION",
    "MIN_RESOLUTION",
    "QUALITY_RESOLUTION",
    "QualityWarning",
    "EncodeWarning",
    "TimeLimitWarning",
    "DEFAULT_TIME_LIMITS",
    "TIGHT_BUDGET",
    "batch_outputs",
    "clear_model_cache",
    "choose_level",
    "decode",
    "decode_arrays",
    "decode_many",
    "default_model_path",
    "encode",
    "encode_many",
    "get_model",
    "measure_fscore",
    "model_id_of",
    "pack_smallest",
    "recode",
    "resolve_device",
    "resolve_model",
    "bundled_model_for",
    "model_for_file",
    "prior_of",
    "set_prior",
    "tables_of",
    "unpack_for",
]

if TYPE_CHECKING:
    from vatcodec.codec.batch import DecodeResult, EncodeResult, batch_outputs, decode_many, encode_many
    from vatcodec.codec.decoding import (
        MAX_RESOLUTION,
        MIN_RESOLUTION,
        QUALITY_RESOLUTION,
        decode,
        decode_arrays,
        measure_fscore,
        unpack_for,
    )
    from vatcodec.codec.encoding import (
        DEFAULT_TIME_LIMITS,
        EFFORT_LEVELS,
        TIGHT_BUDGET,
        encode,
    )
    from vatcodec.codec.models import (
        DEFAULT_MODEL_NAME,
        bundled_model_for,
        clear_model_cache,
        default_model_path,
        get_model,
        model_for_file,
        model_id_of,
        prior_of,
        resolve_device,
        resolve_model,
        set_prior,
        tables_of,
    )
    from vatcodec.codec.packing import CODER_CHOICES, pack_smallest, recode


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(f"vatcodec.codec.{_API[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vatcodec.codec' has no attribute {name!r}")
