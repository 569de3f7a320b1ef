"""Free-form JSON objects (a job's metadata and parameters) that are sure to travel.

Python's JSON reader takes what inferq cannot write or read back: text with lone
surrogates ("\\ud800" is valid JSON, but no UTF-8), NaN and infinities (not JSON at all:
they would come back as null) and nesting deeper than the JSON readers on the way accept.
Such an object is refused where it comes in.
"""

import math
from typing import Annotated, Any

from pydantic import AfterValidator

MAX_DEPTH = 32


def _check(value: object, depth: int) -> None:
    """`depth`: the lists and objects around `value`."""
    if isinstance(value, str):
        _check_text(value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} is not a JSON number")
    elif isinstance(value, dict | list):
        if depth >= MAX_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            for key in value:
                _check_text(key)
        for item in value.values() if isinstance(value, dict) else value:
            _check(item, depth + 1)


def _check_text(text: object) -> None:
    if isinstance(text, str) and not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError as exc:
            raise ValueError("text must be valid UTF-8 (it has a lone surrogate)") from exc


def checked(value: dict[str, Any]) -> dict[str, Any]:
    """`value`, if it travels; ValueError saying why not."""
    if value:  # most jobs carry none: skip the walk on the hot path
        _check(value, 0)
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(checked)]
