"""The handoff detector's cost on the message path: every customer message in a ticket whose AI
is on goes through it before a reply starts (AiService.on_message). Per message, on the shop
questions of the retrieval sets (what customers mostly send: the rules cannot decide, so the
classifier and the nearest-example step run) and on the requests for a person of the handoff
sets, each step alone and the whole detector (distinct texts: the embedding cache never hits).

    python -m bench.handoff_detect [--repeat 3]
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from chatserver.ai.embedding import Embedder
from chatserver.ai.evaluate import EVALSETS
from chatserver.ai.handoff import HandoffDetector, decide_by_rules, normalise
from chatserver.ai.handoff_model import default_classifier

from .common import base_parser, emit, header, latency_summary, print_rows


def messages() -> dict[str, list[str]]:
    questions = [
        q
        for name in ("retrieval", "retrieval_dev", "retrieval_heldout", "retrieval_fresh", "retrieval_unseen")
        for q, _ in json.loads((EVALSETS / f"{name}.json").read_text())["cases"]
    ]
    requests = [
        t
        for name in ("handoff", "handoff_heldout")
        for t in json.loads((EVALSETS / f"{name}.json").read_text())["handoff"]
    ]
    return {"shop questions": questions, "requests for a person": requests}


def timed_ms(fn: Any, texts: list[str], repeat: int) -> list[float]:
    times = []
    for r in range(repeat):
        for text in texts:
            start = time.perf_counter()
            fn(f"{text} {r}")
            times.append((time.perf_counter() - start) * 1000)
    return times


class _NoClassifier:
    """Stands in for the classifier to time the second round's detector (rules, nearest example)."""

    def probability(self, normalised: str) -> float:
        return 0.0


async def detector_ms(texts: list[str], repeat: int, *, classifier: bool) -> list[float]:
    detector = HandoffDetector(Embedder())
    await detector.load()
    if not classifier:
        detector._classifier = _NoClassifier()  # type: ignore[assignment]
    times = []
    for r in range(repeat):
        for text in texts:
            start = time.perf_counter()
            await detector.detect(f"{text} ({r})")
            times.append((time.perf_counter() - start) * 1000)
    return times


def run(args: Any) -> dict[str, Any]:
    header("Handoff detector, per customer message")
    classifier = default_classifier()
    rows = []
    for kind, texts in messages().items():
        steps = {
            "rules": timed_ms(decide_by_rules, texts, args.repeat),
            "classifier": timed_ms(lambda t: classifier.probability(normalise(t)), texts, args.repeat),
            "before: rules, nearest example": asyncio.run(detector_ms(texts, args.repeat, classifier=False)),
            "after: rules, classifier, nearest example": asyncio.run(detector_ms(texts, args.repeat, classifier=True)),
        }
        for step, times in steps.items():
            rows.append({"messages": kind, "step": step, **latency_summary(times)})
    print_rows(rows)
    result = {"cases": rows}
    emit("handoff_detect", result, args.json)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
