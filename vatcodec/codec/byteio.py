"""Byte-level pieces the container and the range coder share: LEB128 varints and a bounds-checked reader."""

from __future__ import annotations

from vatcodec.errors import BitstreamError

MODEL_ID_BYTES = 8  # bytes of the model id in a .vat header and in a range-coded table id
MAX_VARINT_BYTES = 3  # 21 bits: enough for every bounded field, and stops 2**60 claims at once


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class Reader:
    """Bounds-checked cursor: every read names the field, so truncation errors are specific."""

    def __init__(self, data: bytes, end: int):
        self.data, self.pos, self.end = data, 0, end

    def take(self, n: int, what: str) -> bytes:
        if n > self.end - self.pos:
            raise BitstreamError(
                f"{what} needs {n} bytes at offset {self.pos}, only {self.end - self.pos} left"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def varint(self, what: str, lo: int, hi: int) -> int:
        start, value = self.pos, 0
        for i in range(MAX_VARINT_BYTES):
            byte = self.take(1, what)[0]
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                if byte == 0 and i > 0:
                    raise BitstreamError(f"{what} at offset {start}: non-minimal varint")
                if not lo <= value <= hi:
                    raise BitstreamError(f"{what} is {value}, must be in {lo}..{hi}")
                return value
        raise BitstreamError(f"{what} at offset {start}: varint longer than {MAX_VARINT_BYTES} bytes")
