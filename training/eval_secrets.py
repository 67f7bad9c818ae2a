"""Measure `find_secrets` against CredSweeper's fixtures (weak labels: its maintainers' expected output).

    python -m training.eval_secrets [--data ../shared/data]

A line counts as detected when any credential kind (not personal data) matches in it. Prints
precision, recall and throughput; the per-kind counts show which formats are missed.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from mcpwarden.detect.secrets import CREDENTIAL_KINDS, find_secrets
from training.train import DEFAULT_DATA


def main() -> None:
    ap = argparse.ArgumentParser(description="Secrets matcher vs CredSweeper fixtures.")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = ap.parse_args()
    rows = [json.loads(line) for line in (args.data / "credsweeper_fixtures.jsonl").open(encoding="utf-8")]
    tp = fp = fn = tn = 0
    missed: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    t0 = time.thread_time()
    nbytes = 0
    for r in rows:
        nbytes += len(r["text"].encode())
        found = [m.kind for m in find_secrets(r["text"]) if m.kind in CREDENTIAL_KINDS]
        kinds.update(found)
        hit = bool(found)
        if r["label"] == 1:
            tp += hit
            fn += not hit
            if not hit:
                missed[r["meta"].get("rule", "?")] += 1
        else:
            fp += hit
            tn += not hit
    dt = time.thread_time() - t0
    result = {
        "n_pos": tp + fn,
        "n_neg": fp + tn,
        "precision": round(tp / max(tp + fp, 1), 4),
        "recall": round(tp / max(tp + fn, 1), 4),
        "fpr": round(fp / max(fp + tn, 1), 4),
        "us_per_kb": round(dt / (nbytes / 1024) * 1e6, 1),
        "top_missed_rules": missed.most_common(12),
        "kinds_found": kinds.most_common(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
