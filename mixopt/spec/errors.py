"""Spec errors as people read them: one line per problem, ``source: field.path: message``."""

from __future__ import annotations

from pydantic import ValidationError


def format_validation_error(error: ValidationError, source: str) -> str:
    """One line per problem: ``source: field.path: message``."""
    lines = []
    for item in error.errors():
        loc = item["loc"]
        if loc[:1] == ("cluster",):  # written by the user as domains.cluster
            loc = ("domains", *loc)
        where = ".".join(str(p) for p in loc) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{source}: {where}: {message}")
    return "\n".join(lines)
