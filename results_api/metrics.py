"""Prometheus text exposition of the results API's counters (no client library needed)."""

from dataclasses import dataclass

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Counters:
    submitted: int = 0  # jobs accepted by POST /v1/jobs


def render(samples: list[tuple[str, str, str, float]]) -> str:
    """Lines for (name, type, help, value) samples; whole numbers are written exactly."""
    lines = []
    for name, kind, help_text, value in samples:
        text = str(int(value)) if float(value).is_integer() else repr(float(value))
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {text}"]
    return "\n".join(lines) + "\n"
