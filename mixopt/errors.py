"""User-facing errors.

Everything a user can get wrong (a spec field, a data file, a runs table, a constraint) raises a
:class:`MixoptError` whose message says *what* is wrong and *where*. The CLI prints the message
without a traceback and exits non-zero; the service maps it to a 4xx response.
"""

from __future__ import annotations


class MixoptError(Exception):
    """A problem with the user's input, reported without a traceback."""


class SpecError(MixoptError):
    """The search spec is invalid (names the field and the problem)."""


class DataError(MixoptError):
    """A domain's data cannot be read or is unusable (names the domain and file)."""


class RunsTableError(MixoptError):
    """A runs table (CSV/Parquet of mixture → metrics) is malformed."""


class InfeasibleSpaceError(MixoptError):
    """The mixture constraints admit no mixture (bounds and fixed weights cannot sum to 1)."""
