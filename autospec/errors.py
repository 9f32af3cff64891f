"""One exception hierarchy: every error autospec raises on bad input is an ``AutospecError``.

The concrete classes also derive from the matching builtin (``ValueError``/``TypeError``) so code
that already catches those keeps working.
"""


class AutospecError(Exception):
    """Base class of every error raised by autospec."""


class InputValueError(AutospecError, ValueError):
    """An input has the right type but an unusable value (shape, finiteness, symmetry, ...)."""


class InputTypeError(AutospecError, TypeError):
    """An input has a type (or dtype) autospec cannot work with."""


class NotSymmetricError(InputValueError):
    """A symmetric operator was required and the input is not symmetric."""


class NotPositiveDefiniteError(InputValueError):
    """A symmetric positive definite operator was required (detected by CG breakdown or a
    non-positive diagonal)."""


class BreakdownError(AutospecError, ArithmeticError):
    """An iteration cannot continue (e.g. a non-SPD preconditioner inside CG)."""


class ArtifactError(AutospecError, ValueError):
    """An exported engine artifact is missing, corrupt or from another format version."""


class AutospecWarning(UserWarning):
    """Base class of every warning autospec issues."""


class ToleranceWarning(AutospecWarning):
    """A tolerance below what the working precision can reach (about 10·eps of its dtype): the
    solver still runs, and reports ``converged=False`` unless the true residual meets it."""
