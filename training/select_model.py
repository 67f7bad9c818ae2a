"""Model selection by measurement: which features and regularisation the shipped classifier uses.

    python -m training.select_model [--data ../shared/data] [--folds 2]

Compares, on the same held-out splits as ``training.train`` (tool descriptions grouped by Docker
registry server with poisons from held-out templates; tool results / prompts leave-one-source-out),
the classifier alone (no rules) for:

* ``char+word``: character 3-5-grams plus word uni/bigrams (the shipped layout),
* ``char``: character 3-5-grams only,
* ``word``: word unigrams and bigrams only,

each at two regularisation strengths. Prints AUC and TPR at 1 % FPR per split, and the mean, and
writes ``training/selection.json``. Static-embedding candidates (wordllama, model2vec) were not
run in this round; see docs/detection.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold

from mcpwarden.detect.classifier import BITS, feature_indices, prepare
from mcpwarden.detect.normalize import normalize
from training.generate import generate, load_tools
from training.train import (
    DEFAULT_DATA,
    REPO,
    RESULT_SOURCES,
    Row,
    cell_weights,
    load_rows,
    server_of,
    template_set,
    tpr_at,
)

Featurizer = Callable[[str, str], npt.NDArray[np.int64]]


def _char_only(text: str, kind: str) -> npt.NDArray[np.int64]:
    # The word features come after the char n-grams in `feature_indices`; recompute without them.
    full = feature_indices(text, kind)
    n_char = sum(max(len(text) + 2 - n + 1, 0) for n in (3, 4, 5))
    return np.concatenate([full[:n_char], full[-1:]])


def _word_only(text: str, kind: str) -> npt.NDArray[np.int64]:
    full = feature_indices(text, kind)
    n_char = sum(max(len(text) + 2 - n + 1, 0) for n in (3, 4, 5))
    return full[n_char:]


FEATURIZERS: dict[str, Featurizer] = {"char+word": feature_indices, "char": _char_only, "word": _word_only}


def matrix(rows: Sequence[Row], fz: Featurizer, prepared: list[str]) -> sparse.csr_matrix:
    indptr = [0]
    idx_parts: list[npt.NDArray[np.int64]] = []
    val_parts: list[npt.NDArray[np.float32]] = []
    for r, text in zip(rows, prepared, strict=True):
        idx = fz(text, r["train_kind"])
        idx_parts.append(idx)
        val_parts.append(np.full(idx.shape[0], 1.0 / math.sqrt(max(idx.shape[0], 1)), dtype=np.float32))
        indptr.append(indptr[-1] + idx.shape[0])
    x = sparse.csr_matrix(
        (np.concatenate(val_parts), np.concatenate(idx_parts), np.array(indptr)), shape=(len(rows), 1 << BITS)
    )
    x.sum_duplicates()
    return x


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Compare classifier feature sets on held-out splits.")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--folds", type=int, default=2, help="how many of the 5 server folds to run")
    ap.add_argument("--cs", type=float, nargs="+", default=[1.0, 4.0])
    args = ap.parse_args(argv)

    rows = load_rows(args.data)
    gen = list(generate(load_tools(args.data), 6000, 3000, 7))
    for r in gen:
        r["src"] = "generated" if r["label"] == 1 else "generated-benign"
        r["train_kind"] = "tool_description"
    all_rows = rows + gen
    prepared = [prepare(normalize(r["text"]).main.lower) for r in all_rows]
    y = np.array([r["label"] for r in all_rows])

    splits: list[tuple[str, list[int], list[int]]] = []
    docker_idx = [i for i, r in enumerate(all_rows) if r["src"] == "docker"]
    servers = np.array([server_of(all_rows[i]) for i in docker_idx])
    for fold, (_tr, te) in enumerate(GroupKFold(n_splits=5).split(docker_idx, groups=servers)):
        if fold >= args.folds:
            break
        held = set(servers[te])

        def gen_server(r: Row) -> str:
            return str(r["meta"]["server"]).split(":", 1)[1]

        train = [
            i
            for i, r in enumerate(all_rows)
            if not (r["src"] == "docker" and server_of(r) in held)
            and not (
                r["src"].startswith("generated")
                and (gen_server(r) in held or (r["label"] == 1 and template_set(r["meta"]["template"]) == 1))
            )
        ]
        test = [docker_idx[i] for i in te] + [
            i
            for i, r in enumerate(all_rows)
            if r["src"] == "generated" and gen_server(r) in held and template_set(r["meta"]["template"]) == 1
        ]
        splits.append((f"tool_description fold {fold}", train, test))
    for src in RESULT_SOURCES:
        train = [i for i, r in enumerate(all_rows) if r["src"] != src]
        test = [i for i, r in enumerate(all_rows) if r["src"] == src]
        splits.append((f"{src} held out", train, test))

    results: dict[str, Any] = {}
    for name, fz in FEATURIZERS.items():
        x = matrix(all_rows, fz, prepared)
        for c in args.cs:
            key = f"{name} C={c:g}"
            per: dict[str, dict[str, float]] = {}
            for split, train, test in splits:
                clf = LogisticRegression(C=c, solver="liblinear", max_iter=200)
                clf.fit(x[train], y[train], sample_weight=cell_weights([all_rows[i] for i in train]))
                s = clf.decision_function(x[test])
                yt = y[test]
                per[split] = {
                    "auc": round(float(roc_auc_score(yt, s)), 4),
                    "tpr@1%fpr": round(tpr_at(list(yt), list(s), 0.01), 4),
                }
                print(key, split, per[split], file=sys.stderr, flush=True)
            per["mean"] = {
                m: round(float(np.mean([v[m] for k, v in per.items() if k != "mean"])), 4)
                for m in ("auc", "tpr@1%fpr")
            }
            results[key] = per
    (REPO / "training" / "selection.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    for key, per in results.items():
        print(f"{key:18} mean AUC {per['mean']['auc']:.4f}  mean TPR@1%FPR {per['mean']['tpr@1%fpr']:.4f}")


if __name__ == "__main__":
    main()
