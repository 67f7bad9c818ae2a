"""Detection quality and speed in one bounded, offline run: the figures docs/detection.md quotes.

    python bench/detect_eval.py [--data ../shared/data] [--seconds 2] [--markdown out.md]

Quality, per file and kind (AUC, TPR at 1 % and 5 % FPR, and TPR/FPR at the shipped threshold):

* Every figure is **held out by source, server or attack family, never by row**. Retraining the
  models for each fold takes about half an hour (``python -m training.train --eval``), so
  this script reads the out-of-fold scores that run wrote (``training/oof_scores.json.gz``:
  labels and rules / classifier / engine scores of every held-out text) and computes the metrics
  from them; the thresholds are the shipped ones (``mcpwarden/detect/data/model.json``).
* What each row held out is printed beside it: tool descriptions are grouped by Docker registry
  server with poisons built from held-out templates; tool results by injection family x carrier
  type x benign sentences (generated), by context x attack category (BIPIA), and by corpus (other
  corpora's attacks inside held-out carriers); prompts by source.
* Secrets and PII use no training, so they are scored live on CredSweeper's fixtures.

Speed, live on one core (single thread, CPU time per call): texts/s and MB/s, and p50/p99 latency
for 1 KB and 10 KB tool results and for registry tool descriptions.

The whole run is bounded: about 4 x ``--seconds`` for speed plus about a second of metrics
(~10 s with the defaults).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mcpwarden.detect import scan  # noqa: E402
from mcpwarden.detect.classifier import load_model  # noqa: E402

OOF_PATH = ROOT / "training" / "oof_scores.json.gz"
TARGETS = {
    "registry": ("TPR >= 95 % at <= 1 % FPR", 0.95),
    "generated-results": ("TPR >= 90 % at 1 % FPR", 0.90),
    "bipia": ("TPR >= 90 % at 1 % FPR", 0.90),
}


def auc(y: Sequence[int], s: Sequence[float]) -> float:
    """Rank AUC (Mann-Whitney), ties counted half."""
    pairs = sorted(zip(s, y, strict=True))
    n_pos = sum(y)
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    rank_sum = 0.0
    i = 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        avg_rank = (i + j + 1) / 2
        rank_sum += avg_rank * sum(t for _, t in pairs[i:j])
        i = j
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def tpr_at(y: Sequence[int], s: Sequence[float], fpr: float) -> float:
    """TPR at the threshold that keeps FPR <= ``fpr`` (same definition as training.train)."""
    neg = sorted(v for v, t in zip(s, y, strict=True) if t == 0)
    pos = [v for v, t in zip(s, y, strict=True) if t == 1]
    if not neg or not pos:
        return float("nan")
    k = math.floor(fpr * len(neg))
    thr = neg[len(neg) - 1 - k] if k < len(neg) else -math.inf
    return sum(v > thr for v in pos) / len(pos)


def at_threshold(
    y: Sequence[int], engine: Sequence[float], strong: Sequence[float], thr: float
) -> tuple[float, float]:
    flagged = [e >= thr or st > 0 for e, st in zip(engine, strong, strict=True)]
    pos = [f for f, t in zip(flagged, y, strict=True) if t == 1]
    neg = [f for f, t in zip(flagged, y, strict=True) if t == 0]
    return (sum(pos) / len(pos) if pos else float("nan"), sum(neg) / len(neg) if neg else float("nan"))


def quality(thresholds: dict[str, float]) -> list[dict[str, Any]]:
    if not OOF_PATH.exists():
        raise SystemExit(f"{OOF_PATH} missing: run `python -m training.train --eval` first")
    with gzip.open(OOF_PATH, "rt", encoding="utf-8") as fh:
        oof: dict[str, dict[str, Any]] = json.load(fh)
    out = []
    for name, e in oof.items():
        y = e["y"]
        # A strong rule flags whatever the threshold: rank it above every score.
        eng = [v + 1.0 if st > 0 else v for v, st in zip(e["engine"], e["strong"], strict=True)]
        tpr, fpr = at_threshold(y, e["engine"], e["strong"], thresholds.get(e["kind"], 0.5))
        out.append(
            {
                "name": name,
                "file": e["file"],
                "kind": e["kind"],
                "held_out": e["held_out"],
                "n_pos": sum(y),
                "n_neg": len(y) - sum(y),
                "auc": auc(y, eng),
                "tpr1": tpr_at(y, eng, 0.01),
                "tpr5": tpr_at(y, eng, 0.05),
                "clf_auc": auc(y, e["classifier"]),
                "clf_tpr1": tpr_at(y, e["classifier"], 0.01),
                "tpr_thr": tpr,
                "fpr_thr": fpr,
            }
        )
    return out


def secrets_quality(data: Path) -> dict[str, Any] | None:
    path = data / "credsweeper_fixtures.jsonl"
    if not path.exists():
        return None
    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    y = [r["label"] for r in rows]
    found = [
        1.0 if any(x.startswith("secret-") for x in scan(r["text"], "argument").reasons) else 0.0
        for r in rows
    ]
    flagged = [1.0 if scan(r["text"], "argument").flagged else 0.0 for r in rows]
    tpr = sum(f for f, t in zip(found, y, strict=True) if t) / max(sum(y), 1)
    fpr = sum(f for f, t in zip(found, y, strict=True) if not t) / max(len(y) - sum(y), 1)
    ftpr = sum(f for f, t in zip(flagged, y, strict=True) if t) / max(sum(y), 1)
    ffpr = sum(f for f, t in zip(flagged, y, strict=True) if not t) / max(len(y) - sum(y), 1)
    return {
        "n_pos": sum(y),
        "n_neg": len(y) - sum(y),
        "tpr": tpr,
        "fpr": fpr,
        "flag_tpr": ftpr,
        "flag_fpr": ffpr,
    }


# --- speed ---------------------------------------------------------------------------------------
def synthetic_result(size: int, rng: random.Random) -> str:
    """A JSON API response of about ``size`` bytes (records with prose fields)."""
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
        "please",
        "review",
        "attached",
        "meeting",
        "schedule",
        "update",
        "account",
        "balance",
        "payment",
        "received",
        "thanks",
        "regards",
        "team",
        "project",
        "deadline",
    ]
    items = []
    text = ""
    while len(text) < size:
        items.append(
            {
                "id": rng.randrange(10**6),
                "title": " ".join(rng.choice(words) for _ in range(5)),
                "body": " ".join(rng.choice(words) for _ in range(rng.randrange(10, 40))) + ".",
                "created": "2024-05-01T12:00:00Z",
            }
        )
        text = json.dumps({"results": items})
    return text[:size]


def run(fn: Callable[[str], object], texts: list[str], seconds: float) -> dict[str, float]:
    lat: list[float] = []
    nbytes = 0
    end = time.process_time() + seconds
    i = 0
    while time.process_time() < end or i < len(texts):
        t = texts[i % len(texts)]
        t0 = time.process_time()
        fn(t)
        lat.append(time.process_time() - t0)
        nbytes += len(t.encode("utf-8"))
        i += 1
        if i >= 20 * len(texts):
            break
    total = sum(lat)
    lat.sort()
    return {
        "texts_per_s": len(lat) / total if total else float("inf"),
        "mb_per_s": nbytes / total / 1e6 if total else float("inf"),
        "p50_ms": statistics.median(lat) * 1e3,
        "p99_ms": lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1e3,
        "n": len(lat),
    }


def speed(data: Path, seconds: float) -> list[tuple[str, dict[str, float]]]:
    rng = random.Random(0)
    out: list[tuple[str, dict[str, float]]] = []
    r1 = [synthetic_result(1024, rng) for _ in range(300)]
    r10 = [synthetic_result(10 * 1024, rng) for _ in range(60)]
    out.append(("tool_result 1 KB (JSON)", run(lambda t: scan(t, "tool_result"), r1, seconds)))
    out.append(("tool_result 10 KB (JSON)", run(lambda t: scan(t, "tool_result"), r10, seconds)))
    path = data / "bipia_train.jsonl"
    if path.exists():
        texts = [json.loads(line)["text"] for line in path.open(encoding="utf-8")][:500]
        out.append(("tool_result BIPIA (~1.5 KB)", run(lambda t: scan(t, "tool_result"), texts, seconds)))
    path = data / "docker_mcp_registry_tools.jsonl"
    if path.exists():
        texts = [json.loads(line)["text"] for line in path.open(encoding="utf-8")][:1000]
        out.append(("tool_description registry", run(lambda t: scan(t, "tool_description"), texts, seconds)))
    return out


def pct(v: float) -> str:
    return "n/a" if v != v else f"{100 * v:.1f} %"


def num(v: float) -> str:
    return "n/a" if v != v else f"{v:.3f}"


def markdown(
    rows: list[dict[str, Any]], sec: dict[str, Any] | None, spd: list[tuple[str, dict[str, float]]]
) -> str:
    lines = [
        "| data (file) | kind | held out | pos / neg | AUC | TPR @1 % FPR | TPR @5 % FPR "
        "| at shipped threshold: TPR / FPR | classifier alone: AUC, TPR @1 % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['file']} | {r['kind']} | {r['held_out']} | {r['n_pos']} / {r['n_neg']} | {num(r['auc'])} "
            f"| {pct(r['tpr1'])} | {pct(r['tpr5'])} | {pct(r['tpr_thr'])} / {pct(r['fpr_thr'])} "
            f"| {num(r['clf_auc'])}, {pct(r['clf_tpr1'])} |"
        )
    if sec:
        lines.append(
            f"| credsweeper_fixtures.jsonl (secret rules, no training) | argument | nothing learned "
            f"| {sec['n_pos']} / {sec['n_neg']} | | | "
            f"| {pct(sec['tpr'])} / {pct(sec['fpr'])} (secret found) | |"
        )
    lines += [
        "",
        "| speed (one core, one thread) | texts/s | MB/s | p50 ms | p99 ms |",
        "|---|---|---|---|---|",
    ]
    for name, r in spd:
        lines.append(
            f"| {name} | {r['texts_per_s']:.0f} | {r['mb_per_s']:.2f} "
            f"| {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "data")
    ap.add_argument("--seconds", type=float, default=2.0, help="time budget per speed cell")
    ap.add_argument("--markdown", type=Path, default=None, help="also write the markdown tables here")
    ap.add_argument("--no-speed", action="store_true")
    args = ap.parse_args()

    t0 = time.perf_counter()
    model = load_model()
    load_ms = (time.perf_counter() - t0) * 1e3
    rows = quality(model.thresholds)
    sec = secrets_quality(args.data)
    print(
        f"{'data':58} {'kind':16} {'pos/neg':>11} {'AUC':>6} {'TPR@1%':>7} {'TPR@5%':>7} {'thr TPR/FPR':>14}"
    )
    for r in rows:
        print(
            f"{r['file'][:58]:58} {r['kind']:16} {r['n_pos']:>5}/{r['n_neg']:<5} {num(r['auc']):>6} "
            f"{pct(r['tpr1']):>7} {pct(r['tpr5']):>7} {pct(r['tpr_thr']):>7}/{pct(r['fpr_thr']):<7}"
        )
        print(f"    held out: {r['held_out']}")
        if r["name"] in TARGETS:
            text, bar = TARGETS[r["name"]]
            ok = r["tpr1"] >= bar
            print(f"    target {text}: {'MET' if ok else 'NOT MET'}")
    if sec:
        print(
            f"credsweeper (argument, secret rules): secret found TPR {pct(sec['tpr'])} "
            f"FPR {pct(sec['fpr'])}; "
            f"flagged TPR {pct(sec['flag_tpr'])} FPR {pct(sec['flag_fpr'])}"
        )
    spd: list[tuple[str, dict[str, float]]] = []
    if not args.no_speed:
        print(f"\nmodel load (once, lazy): {load_ms:.0f} ms")
        print(f"{'speed (one core)':32} {'texts/s':>9} {'MB/s':>7} {'p50 ms':>7} {'p99 ms':>7}")
        spd = speed(args.data, args.seconds)
        for name, r in spd:
            print(
                f"{name:32} {r['texts_per_s']:9.0f} {r['mb_per_s']:7.2f} "
                f"{r['p50_ms']:7.2f} {r['p99_ms']:7.2f}"
            )
        print("targets: >= 2,000 texts/s at 1 KB; p99 <= 5 ms at 10 KB")
    if args.markdown:
        args.markdown.write_text(markdown(rows, sec, spd), encoding="utf-8")
        print(f"wrote {args.markdown}")


if __name__ == "__main__":
    main()
