"""User-facing error and warning types: a VatError or an EncodeWarning is printed as one line by the CLI."""


class VatError(Exception):
    """Base class for errors caused by bad input (files, arguments), not by bugs."""


class MeshError(VatError):
    """The input mesh cannot be loaded or fails validation."""


class EmptyShapeError(VatError):
    """A decoded occupancy field has no surface: a valid file, but nothing to mesh."""


class BudgetError(VatError):
    """A byte budget below the smallest file the model can write (its one-scale file)."""


class BitstreamError(VatError):
    """A .vat file is truncated, corrupt, foreign or of an unsupported version."""


class EncodeWarning(UserWarning):
    """Something the user should know about a file that was written all the same (one line on the CLI)."""


class QualityWarning(EncodeWarning):
    """`encode(quality=F)` did not reach F: the file returned is the best one it measured."""


class TimeLimitWarning(EncodeWarning):
    """Effort refinement stopped at its time limit: the file holds the best tokens found by then."""
