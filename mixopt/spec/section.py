"""The base of every spec section: typed, self-validating, no unknown keys."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class Section(BaseModel):
    """A spec section: unknown keys are errors, so a typo never silently falls back to a
    default; assignments are validated too; inf and NaN are never numbers."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
