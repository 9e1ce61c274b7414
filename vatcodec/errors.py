"""User-facing error types: anything raised as a VatError is printed as one line by the CLI."""


class VatError(Exception):
    """Base class for errors caused by bad input (files, arguments), not by bugs."""


class MeshError(VatError):
    """The input mesh cannot be loaded or fails validation."""


class EmptyShapeError(VatError):
    """A decoded occupancy field has no surface: a valid file, but nothing to mesh."""


class BitstreamError(VatError):
    """A .vat file is truncated, corrupt, foreign or of an unsupported version."""
