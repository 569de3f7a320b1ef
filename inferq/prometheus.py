"""Prometheus text exposition (format 0.0.4), written by hand: no client library needed."""

from collections.abc import Mapping, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labelled = Sequence[tuple[Mapping[str, str], float]]
# name, type ("counter" or "gauge"), help, and one value or one value per label set
Sample = tuple[str, str, str, float | Labelled]


def render(samples: Sequence[Sample]) -> str:
    """The exposition of `samples`; whole numbers are written exactly."""
    lines = []
    for name, kind, help_text, value in samples:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        if isinstance(value, int | float):
            lines.append(f"{name} {_number(value)}")
            continue
        for labels, number in value:
            pairs = ",".join(f'{key}="{_escaped(text)}"' for key, text in labels.items())
            lines.append(f"{name}{{{pairs}}} {_number(number)}")
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
