"""Sentence embeddings for retrieval and handoff detection: WordLlama (l2_supercat, 256 dimensions),
whose wheel ships its weights and tokenizer, so nothing is downloaded at run time.

WordLlama's own `WordLlama.load()` looks for the bundled tokenizer under a folder name the wheel
does not use and then tries Hugging Face, so the model is assembled here from the two files inside
the installed package. Embedding is a token-embedding lookup and an average: about 0.05 ms per
question on one core, but it is still numpy work, so the event loop hands it to an executor.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

MODEL_NAME = "wordllama-l2_supercat-256"
DIMENSIONS = 256
Vectors = npt.NDArray[np.float32]
# Questions repeat (retries, the same FAQ asked by many customers): the last ones are kept.
QUERY_CACHE_SIZE = 2048
# Longer texts are cut before tokenising: an average of 4,000 characters already says it all.
MAX_EMBED_CHARS = 4000


@functools.cache
def _load_model() -> Any:
    """The model, loaded once per process: 16 MB of read-only weights that every app in the
    process (tests start many) can share. Blocking (about half a second)."""
    # wordllama.inference calls logging.basicConfig() when imported: with no root handler yet it
    # would install its own (stderr, INFO) under ours. A placeholder handler makes that a no-op.
    root = logging.getLogger()
    placeholder = logging.NullHandler()
    root.addHandler(placeholder)
    try:
        import wordllama
        from safetensors import safe_open
        from tokenizers import Tokenizer
        from wordllama.inference import WordLlamaInference
    finally:
        root.removeHandler(placeholder)

    package = Path(wordllama.__file__).parent
    tokenizer = Tokenizer.from_file(str(package / "tokenizers" / "l2_supercat_tokenizer_config.json"))
    with safe_open(str(package / "weights" / "l2_supercat_256.safetensors"), framework="np", device="cpu") as f:
        weights = f.get_tensor("embedding.weight")
    return WordLlamaInference(weights, tokenizer)


class Embedder:
    """Unit-length vectors for texts. `embed` blocks; `embed_query` runs in the default executor
    and remembers recent questions."""

    model_name = MODEL_NAME
    dimensions = DIMENSIONS

    def __init__(self, cache_size: int = QUERY_CACHE_SIZE) -> None:
        self._cache: OrderedDict[str, Vectors] = OrderedDict()
        self._cache_size = cache_size

    def embed(self, texts: list[str]) -> Vectors:
        """One unit vector per text (zero for a text with no known token). Blocking."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        model = _load_model()
        raw = np.asarray(model.embed([t[:MAX_EMBED_CHARS] for t in texts]), dtype=np.float32)
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        return np.divide(raw, norms, out=np.zeros_like(raw), where=norms > 0)

    async def load(self) -> None:
        """Load the weights off the event loop (at startup, so the first question does not wait)."""
        await asyncio.get_running_loop().run_in_executor(None, _load_model)

    async def embed_many(self, texts: list[str]) -> Vectors:
        return await asyncio.get_running_loop().run_in_executor(None, self.embed, texts)

    def cached(self, text: str) -> Vectors | None:
        """The question's vector if it was embedded recently (no executor hop then)."""
        key = text[:MAX_EMBED_CHARS]
        vector = self._cache.get(key)
        if vector is not None:
            self._cache.move_to_end(key)
        return vector

    async def embed_query(self, text: str) -> Vectors:
        """The vector of one question (1-D), cached by its text."""
        key = text[:MAX_EMBED_CHARS]
        cached = self.cached(key)
        if cached is not None:
            return cached
        vector: Vectors = (await self.embed_many([key]))[0]
        self._cache[key] = vector
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return vector


def to_bytes(vector: Vectors) -> bytes:
    """The stored form: little-endian float32 (PostgreSQL bytea; pgvector is not required)."""
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(data: bytes) -> Vectors:
    return np.frombuffer(data, dtype="<f4").astype(np.float32)
