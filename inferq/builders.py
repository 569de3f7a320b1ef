"""Every model inferq can build offline, by name."""

from collections.abc import Callable
from pathlib import Path


def _builders() -> dict[str, Callable[[Path], Path]]:
    from inferq.demo_models import build_breast_cancer, build_diabetes
    from inferq.minilm import build_minilm
    from inferq.resnet import build_resnet18

    return {
        "breast_cancer": build_breast_cancer,
        "diabetes": build_diabetes,
        "minilm": build_minilm,
        "resnet18": build_resnet18,
    }


class UnknownModel(ValueError):
    pass


def build(name: str, repo: Path) -> Path:
    builders = _builders()
    if name not in builders:
        raise UnknownModel(f"no builder for {name!r}; known: {', '.join(sorted(builders))}")
    return builders[name](repo)
