"""Text encodings of mesh files: turn UTF-8-with-BOM, UTF-16 and Latin-1/cp1252 text into the UTF-8 parsers want.

Real OBJ, PLY and OFF files carry comments and material names in whatever encoding their exporter used.
trimesh decodes text as UTF-8 and, failing that, asks the optional `charset-normalizer` package to guess,
so without it a valid file is refused (and with it, a 70 ms import buys a guess). Mesh syntax is ASCII; only
comments and names vary. So the rule here is short and needs no guessing:

1. a byte-order mark decides: UTF-8, UTF-16 LE or BE;
2. otherwise UTF-8 if the bytes are valid UTF-8 (the file is then parsed as it is);
3. otherwise cp1252, the superset of printable Latin-1 that Windows exporters write;
4. a byte that cp1252 leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D) in a file that is none of these gets a
   one-line error.

Binary formats are left alone (a binary STL is told apart by its size), except the text header of a binary PLY.
"""

from __future__ import annotations

import codecs

TEXT_SUFFIXES = (".obj", ".off", ".ply", ".stl", ".gltf")
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class TextEncodingError(ValueError):
    """The text is neither UTF-8, UTF-16 with a byte-order mark, nor cp1252 / Latin-1."""


def bom_codec(raw: bytes) -> str | None:
    """The codec a byte-order mark at the start of `raw` names, or None."""
    for bom, name in _BOMS:
        if raw.startswith(bom):
            return name
    return None


def to_utf8(raw: bytes) -> bytes | None:
    """`raw` as UTF-8 without a BOM, or None when it already is UTF-8 (nothing to do).

    Raises:
        TextEncodingError: with the reason, in one line.
    """
    name = bom_codec(raw)
    if name is not None:
        try:
            return raw.decode(name).encode("utf-8")
        except UnicodeDecodeError as e:
            raise TextEncodingError(
                f"not valid {name.upper()} text after its byte-order mark ({e.reason})"
            ) from None
    try:
        raw.decode("utf-8")
        return None
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252").encode("utf-8")
    except UnicodeDecodeError as e:
        bad = raw[e.start]
        raise TextEncodingError(
            f"text is neither UTF-8, UTF-16 with a byte-order mark, nor cp1252/Latin-1"
            f" (byte 0x{bad:02x} at offset {e.start})"
        ) from None


def _binary_stl(raw: bytes) -> bool:
    """A binary STL: an 80-byte header, a triangle count, and exactly 50 bytes per triangle.

    ASCII STL starts with "solid", but so do many binary files' headers; the size settles it.
    """
    if len(raw) >= 84 and len(raw) == 84 + 50 * int.from_bytes(raw[80:84], "little"):
        return True
    return not raw.lstrip()[:5].lower() == b"solid"


def _split_ply_header(raw: bytes) -> tuple[bytes, bytes] | None:
    end = raw.find(b"end_header")
    if end < 0:
        return None
    cut = raw.find(b"\n", end)
    cut = len(raw) if cut < 0 else cut + 1
    return raw[:cut], raw[cut:]


def utf8_source(raw: bytes, suffix: str) -> bytes | None:
    """The bytes a parser should read for a mesh file of this suffix, or None to read the file as it is.

    Raises:
        TextEncodingError: text that cannot be decoded.
    """
    suffix = suffix.lower()
    if suffix not in TEXT_SUFFIXES:
        return None
    if suffix == ".stl" and bom_codec(raw) is None and _binary_stl(raw):
        return None
    if suffix == ".ply" and bom_codec(raw) is None:
        parts = _split_ply_header(raw)
        if parts is None:
            return None  # no header: let the parser say what is wrong
        header, body = parts
        fixed = to_utf8(header)
        if b"format ascii" not in header:
            return None if fixed is None else fixed + body  # binary body: never re-encode it
        fixed_body = to_utf8(body)
        if fixed is None and fixed_body is None:
            return None
        return (fixed or header) + (fixed_body or body)
    return to_utf8(raw)
