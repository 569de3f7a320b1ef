"""Pre-processing steps: what turns the inputs clients send into the graph's inputs."""

from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

Arrays = dict[str, npt.NDArray[Any]]


class Tokenize(BaseModel):
    """Texts (a BYTES input of shape [n]) to token ids and attention mask, padded or cut to
    `max_length`, by a Hugging Face `tokenizer.json` in the model's directory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    op: Literal["tokenize"]
    input: str = Field(description="the BYTES input clients send")
    tokenizer: str = Field(description="tokenizer.json, relative to the model directory")
    max_length: int = Field(default=32, ge=1, le=8192)
    ids: str = "input_ids"
    mask: str = "attention_mask"

    @property
    def produces(self) -> tuple[str, str]:
        return self.ids, self.mask

    def bind(self, model_dir: Path) -> "Tokenizer":
        return Tokenizer(self, model_dir / self.tokenizer)


class Tokenizer:
    def __init__(self, step: Tokenize, path: Path) -> None:
        from tokenizers import Tokenizer as HfTokenizer

        self._step = step
        self._tokenizer = HfTokenizer.from_file(str(path))
        self._tokenizer.enable_padding(length=step.max_length)
        self._tokenizer.enable_truncation(max_length=step.max_length)

    def __call__(self, arrays: Arrays) -> Arrays:
        step = self._step
        texts = [str(text) for text in arrays[step.input].ravel()]
        encoded = self._tokenizer.encode_batch(texts)
        rest = {name: value for name, value in arrays.items() if name != step.input}
        rest[step.ids] = np.array([e.ids for e in encoded], dtype=np.int64)
        rest[step.mask] = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        return rest
