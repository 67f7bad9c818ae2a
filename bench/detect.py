"""Throughput and latency of the detection engine, side by side with a rules-only baseline.

    python bench/detect.py [--seconds 2] [--data ../shared/data]

For each corpus (real tool results from BIPIA, real tool descriptions from the Docker MCP registry,
and synthetic 1 KB / 10 KB results) and each mode (rules only; rules + classifier = ``scan``) it
prints texts/s, MB/s, microseconds per KB and p50/p99 latency on one core (single thread). Each
cell runs for at most ``--seconds``, so the whole run is bounded (about 8 cells x seconds, plus
the one-time model load, which is reported separately). Also times ``redact`` and ``sanitize``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mcpwarden.detect import redact, sanitize, scan  # noqa: E402
from mcpwarden.detect.classifier import load_model  # noqa: E402
from mcpwarden.detect.engine import score_text  # noqa: E402


def load_texts(path: Path, limit: int) -> list[str]:
    if not path.exists():
        return []
    rows = [json.loads(line)["text"] for line in path.open(encoding="utf-8")]
    random.Random(0).shuffle(rows)
    return rows[:limit]


def synthetic(size: int, n: int) -> list[str]:
    rng = random.Random(size)
    words = [
        "the",
        "report",
        "shows",
        "revenue",
        "growth",
        "in",
        "all",
        "regions",
        "customer",
        "order",
        "shipped",
        "invoice",
        "total",
        "status",
        "open",
        "closed",
        "pending",
        "issue",
        "comment",
        "user",
        "repository",
        "file",
        "path",
        "value",
        "error",
        "result",
    ]
    out = []
    for _ in range(n):
        parts: list[str] = []
        while sum(len(p) + 1 for p in parts) < size:
            parts.append(rng.choice(words))
        out.append(" ".join(parts)[:size])
    return out


# CPU time of this thread, not wall time: the figures are "per core" and stay meaningful on a
# shared, loaded machine (wall-clock p99 there measures the scheduler, not the engine).
CLOCK = time.thread_time


def run(fn: Callable[[str], object], texts: list[str], seconds: float) -> dict[str, float]:
    lat: list[float] = []
    nbytes = 0
    start = time.perf_counter()
    i = 0
    while time.perf_counter() - start < seconds and i < 50 * len(texts):
        t = texts[i % len(texts)]
        t0 = CLOCK()
        fn(t)
        lat.append(CLOCK() - t0)
        nbytes += len(t.encode("utf-8"))
        i += 1
    total = sum(lat)
    lat.sort()
    return {
        "texts_per_s": len(lat) / total,
        "mb_per_s": nbytes / total / 1e6,
        "us_per_kb": total / (nbytes / 1024) * 1e6,
        "p50_ms": statistics.median(lat) * 1e3,
        "p99_ms": lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1e3,
        "n": len(lat),
        "avg_kb": nbytes / len(lat) / 1024,
    }


def row(name: str, mode: str, r: dict[str, float]) -> str:
    return (
        f"{name:38} {mode:18} {r['texts_per_s']:9.0f} {r['mb_per_s']:7.2f} {r['us_per_kb']:8.0f} "
        f"{r['p50_ms']:7.2f} {r['p99_ms']:7.2f} {r['avg_kb']:7.2f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="time budget per cell")
    ap.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "data")
    args = ap.parse_args()

    t0 = time.perf_counter()
    load_model()
    print(f"model load (once, lazy): {(time.perf_counter() - t0) * 1e3:.0f} ms wall")
    print("figures below: single thread, CPU time per call (texts/s = 1 / mean CPU time)")

    corpora: list[tuple[str, str, list[str]]] = [
        ("tool results (BIPIA)", "tool_result", load_texts(args.data / "bipia_train.jsonl", 500)),
        (
            "tool descriptions (Docker registry)",
            "tool_description",
            load_texts(args.data / "docker_mcp_registry_tools.jsonl", 1000),
        ),
        ("synthetic result 1 KB", "tool_result", synthetic(1024, 200)),
        ("synthetic result 10 KB", "tool_result", synthetic(10 * 1024, 50)),
    ]
    header = (
        f"{'corpus':38} {'mode':18} {'texts/s':>9} {'MB/s':>7} {'us/KB':>8} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'avg KB':>7}"
    )
    print(header)
    print("-" * len(header))
    for name, kind, texts in corpora:
        if not texts:
            print(f"{name:38} (data not found, skipped)")
            continue
        modes: list[tuple[str, Callable[[str], object]]] = [
            ("rules only", lambda t, k=kind: score_text(t, k, None)),
            ("rules+classifier", lambda t, k=kind: scan(t, k)),  # type: ignore[misc]
        ]
        for mode, fn in modes:
            r = run(fn, texts, args.seconds)
            print(row(name, mode, r))
    texts = load_texts(args.data / "bipia_train.jsonl", 500) or synthetic(1024, 200)
    for mode, fn2 in (("redact", redact), ("sanitize", sanitize)):
        r = run(fn2, texts, args.seconds / 2)
        print(row("tool results (BIPIA)", mode, r))


if __name__ == "__main__":
    main()
