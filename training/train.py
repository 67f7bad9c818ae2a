"""Reproducible training and evaluation of the detection classifier.

    python -m training.train [--data ../shared/data] [--eval] [--out src/mcpwarden/detect/data]

Steps (deterministic for a given seed and data):

1. Load the labelled corpora from ``--data`` (see its README) and generate poisoned and benign
   look-alike tool definitions with ``training.generate`` from the real registry/BFCL tools.
2. ``--eval``: cross-validate **by source or by server, never by row**:
   * tool descriptions: 5 folds over Docker MCP registry *servers* (GroupKFold); generated poisons
     are built on the fold's held-out servers' tools from *held-out templates* (odd template ids in
     training folds never appear in test); false positives are measured on the held-out servers'
     real tools, and separately on BFCL as an unseen source;
   * untrusted text (tool results, prompts): leave-one-source-out over BIPIA, S-Labs and
     neuralchemy (the held-out corpus contributes no row to training).
   Rules only, classifier only and the combined engine are scored on the same rows; AUC and
   TPR at 1 % / 5 % FPR go to ``training/results.json`` (docs/detection.md quotes them).
3. Per-kind thresholds = the 99th percentile of the combined score on held-out benign rows (the
   out-of-fold scores from step 2), so the shipped operating point is ~1 % FPR on unseen data.
4. Fit the final model on everything and write ``model.npz`` (float16 weights) + ``model.json``.

Model choice: logistic regression over the hashed features in ``mcpwarden.detect.classifier``
(see docs/detection.md for the candidates measured). scikit-learn is a training-only dependency.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import GroupKFold

from mcpwarden.detect.classifier import BITS, Model, feature_indices, prepare
from mcpwarden.detect.engine import KINDS, score_text
from mcpwarden.detect.normalize import normalize
from training import train_results
from training.generate import generate, load_tools

Row = dict[str, Any]
REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / ".." / "shared" / "data"
FILES = [
    "docker_mcp_registry_tools",
    "bfcl_functions",
    "bipia_train",
    "slabs_prompt_injection",
    "neuralchemy_prompt_injection",
    "yanismiraoui_prompt_injections",
    "credsweeper_fixtures",
]
RESULT_SOURCES = ["slabs", "neuralchemy"]
# Out-of-fold scores of every evaluation, written to training/oof_scores.json.gz so that
# bench/detect_eval.py can report them without retraining (see its docstring).
OOF: dict[str, dict[str, Any]] = {}


def record(
    name: str, file: str, kind: str, held_out: str, y: Sequence[int], sc: dict[str, list[float]]
) -> None:
    OOF[name] = {"file": file, "kind": kind, "held_out": held_out, "y": [int(v) for v in y]} | {
        k: [round(float(v), 5) for v in sc[k]] for k in ("rules", "classifier", "engine", "strong")
    }


def short_source(row: Row) -> str:
    s = row["source"]
    for key in ("docker", "gorilla", "BIPIA", "S-Labs", "neuralchemy", "yanismiraoui", "CredSweeper"):
        if key in s:
            return {"gorilla": "bfcl", "BIPIA": "bipia", "S-Labs": "slabs", "CredSweeper": "credsweeper"}.get(
                key, key
            ).lower()
    return s.split(":")[0]


def load_rows(data: Path) -> list[Row]:
    rows: list[Row] = []
    for name in FILES:
        for line in (data / f"{name}.jsonl").open(encoding="utf-8"):
            r = json.loads(line)
            r["src"] = short_source(r)
            # Prompts are untrusted text like tool results: train them in the same kind group.
            r["train_kind"] = "tool_result" if r["kind"] == "user_prompt" else r["kind"]
            rows.append(r)
    return rows


def server_of(row: Row) -> str:
    return str(row["meta"].get("server") or "bfcl")


def featurize(rows: Sequence[Row]) -> sparse.csr_matrix:
    indptr = [0]
    indices: list[npt.NDArray[np.int64]] = []
    data: list[npt.NDArray[np.float32]] = []
    for r in rows:
        idx = feature_indices(prepare(normalize(r["text"]).main.lower), r["train_kind"])
        indices.append(idx)
        data.append(np.full(idx.shape[0], 1.0 / math.sqrt(idx.shape[0]), dtype=np.float32))
        indptr.append(indptr[-1] + idx.shape[0])
    x = sparse.csr_matrix(
        (np.concatenate(data), np.concatenate(indices), np.array(indptr)), shape=(len(rows), 1 << BITS)
    )
    x.sum_duplicates()
    return x


def cell_weights(rows: Sequence[Row]) -> npt.NDArray[np.float64]:
    """Each (source, label) cell gets the same total weight, so 15k S-Labs prompts do not drown
    3k registry tools, and a corpus with 75 % attacks does not teach that its style is an attack."""
    cells = Counter((r["src"], r["label"]) for r in rows)
    w = np.array([1.0 / cells[(r["src"], r["label"])] for r in rows])
    return w * (len(rows) / w.sum())


def fit(x: sparse.csr_matrix, y: npt.NDArray[np.int64], w: npt.NDArray[np.float64], c: float) -> Model:
    clf = LogisticRegression(C=c, solver="liblinear", max_iter=200)
    clf.fit(x, y, sample_weight=w)
    weights = clf.coef_[0].astype(np.float16).astype(np.float32)
    return Model(weights, float(clf.intercept_[0]), {}, {})


def tpr_at(y: Sequence[int], s: Sequence[float], fpr: float) -> float:
    """TPR at the threshold that keeps FPR <= fpr (threshold = that quantile of the negatives)."""
    neg = np.sort(np.array([v for v, t in zip(s, y, strict=True) if t == 0]))
    pos = np.array([v for v, t in zip(s, y, strict=True) if t == 1])
    if len(neg) == 0 or len(pos) == 0:
        return float("nan")
    k = math.floor(fpr * len(neg))
    thr = neg[len(neg) - 1 - k] if k < len(neg) else -np.inf
    return float((pos > thr).mean())


def metrics(y: Sequence[int], scores: dict[str, list[float]]) -> dict[str, Any]:
    out: dict[str, Any] = {"n_pos": int(sum(y)), "n_neg": int(len(y) - sum(y))}
    for name, s in scores.items():
        if name == "strong":
            continue
        m: dict[str, float] = {}
        if 0 < sum(y) < len(y):
            m["auc"] = float(roc_auc_score(y, s))
            m["tpr@1%fpr"] = tpr_at(y, s, 0.01)
            m["tpr@5%fpr"] = tpr_at(y, s, 0.05)
            _ = roc_curve
        out[name] = {k: round(v, 4) for k, v in m.items()}
    return out


def engine_scores(rows: Iterable[Row], model: Model, kind: str) -> dict[str, list[float]]:
    """Scores of rules alone, classifier alone and the engine; plus whether a strong rule fired
    (``strong``: 1.0/0.0), which flags whatever the threshold (so operating points include it)."""
    out: dict[str, list[float]] = {"rules": [], "classifier": [], "engine": [], "strong": []}
    # Thresholds above 1 make `flagged` true only when a strong rule fired.
    probe = Model(model.weights, model.bias, dict.fromkeys(KINDS, 1.01), {})
    for r in rows:
        text = r["text"]
        out["rules"].append(score_text(text, kind, None).score)
        out["classifier"].append(score_text(text, kind, model, use_rules=False).score)
        f = score_text(text, kind, probe)
        out["engine"].append(f.score)
        out["strong"].append(1.0 if f.flagged else 0.0)
    return out


def operating_point(y: Sequence[int], sc: dict[str, list[float]], thr: float) -> dict[str, float]:
    """What users get at the shipped threshold: flagged = strong rule or engine score >= thr."""
    flagged = [s >= thr or st > 0 for s, st in zip(sc["engine"], sc["strong"], strict=True)]
    pos = [f for f, t in zip(flagged, y, strict=True) if t == 1]
    neg = [f for f, t in zip(flagged, y, strict=True) if t == 0]
    return {
        "tpr": round(float(np.mean(pos)), 4) if pos else float("nan"),
        "fpr": round(float(np.mean(neg)), 4) if neg else float("nan"),
    }


def template_set(tid: str) -> int:
    return int(hashlib.sha256(tid.encode()).hexdigest(), 16) % 2


def evaluate(
    rows: list[Row], gen: list[Row], c: float, log: Any
) -> tuple[dict[str, Any], dict[str, list[float]]]:
    results: dict[str, Any] = {}
    negatives: dict[str, list[float]] = defaultdict(list)
    base = [r for r in rows]
    all_rows = base + gen
    t0 = time.time()
    x_all = featurize(all_rows)
    log(f"featurized {len(all_rows)} rows in {time.time() - t0:.1f}s")
    y_all = np.array([r["label"] for r in all_rows])
    pos = {id(r): i for i, r in enumerate(all_rows)}

    # --- tool descriptions: GroupKFold by Docker registry server ---------------------------------
    docker = [r for r in base if r["src"] == "docker"]
    servers = np.array([server_of(r) for r in docker])
    pooled: dict[str, Any] = {"y": [], "engine": [], "rules": [], "classifier": [], "strong": []}
    hard: dict[str, Any] = {"y": [], "engine": [], "rules": [], "classifier": [], "strong": []}
    for fold, (_tr, te) in enumerate(GroupKFold(n_splits=5).split(docker, groups=servers)):
        test_servers = set(servers[te])
        train_rows = [
            r
            for r in all_rows
            if not (r["src"] == "docker" and server_of(r) in test_servers)
            and not (
                r["src"].startswith("generated")
                and (
                    r["meta"]["server"].split(":", 1)[1] in test_servers
                    or (r["label"] == 1 and template_set(r["meta"]["template"]) == 1)
                )
            )
        ]
        test_pos = [
            r
            for r in gen
            if r["label"] == 1
            and r["meta"]["server"].split(":", 1)[1] in test_servers
            and template_set(r["meta"]["template"]) == 1
        ]
        test_neg = [docker[i] for i in te]
        test_hard = [
            r for r in gen if r["label"] == 0 and r["meta"]["server"].split(":", 1)[1] in test_servers
        ]
        idx = [pos[id(r)] for r in train_rows]
        model = fit(x_all[idx], y_all[idx], cell_weights(train_rows), c)
        test = test_neg + test_pos
        sc = engine_scores(test, model, "tool_description")
        pooled["y"] += [r["label"] for r in test]
        for k in sc:
            pooled[k] += sc[k]
        negatives["tool_description"] += sc["engine"][: len(test_neg)]
        hs = engine_scores(test_hard, model, "tool_description")
        hard["y"] += [0] * len(test_hard)
        for k in hs:
            hard[k] += hs[k]
        log(
            f"tool_description fold {fold}: {len(test_neg)} real tools, {len(test_pos)} poisoned, "
            f"{time.time() - t0:.0f}s"
        )
    results["tool_description (Docker registry, by server; poisons from held-out templates)"] = metrics(
        pooled["y"], {k: pooled[k] for k in ("rules", "classifier", "engine")}
    )
    thr_td = float(np.quantile(negatives["tool_description"], 0.99))
    key = "tool_description (Docker registry, by server; poisons from held-out templates)"
    results[key]["at shipped threshold"] = operating_point(pooled["y"], pooled, thr_td)
    hard_key = (
        "tool_description hard negatives (benign insertions, held-out servers): FPR at shipped threshold"
    )
    results[hard_key] = {"fpr": operating_point(hard["y"], hard, thr_td)["fpr"], "n": len(hard["y"])}
    record(
        "registry",
        "docker_mcp_registry_tools.jsonl + generated poisons",
        "tool_description",
        "5-fold by registry server; poisons from held-out templates",
        pooled["y"],
        pooled,
    )
    record(
        "lookalikes",
        "generated benign look-alike tools",
        "tool_description",
        "held-out servers",
        hard["y"],
        hard,
    )

    # BFCL as an unseen source of benign tool definitions.
    train_rows = [r for r in all_rows if r["src"] != "bfcl" and "bfcl" not in r["src"]]
    idx = [pos[id(r)] for r in train_rows]
    model = fit(x_all[idx], y_all[idx], cell_weights(train_rows), c)
    bfcl = [r for r in base if r["src"] == "bfcl"]
    sc = engine_scores(bfcl, model, "tool_description")
    results["tool_description FPR on BFCL (source held out) at shipped threshold"] = {
        "fpr": operating_point([0] * len(bfcl), sc, thr_td)["fpr"],
        "n": len(bfcl),
    }
    negatives["tool_description"] += sc["engine"]
    record("bfcl", "bfcl_functions.jsonl", "tool_description", "source held out", [0] * len(bfcl), sc)

    # --- untrusted text: leave one source out ----------------------------------------------------
    loso: dict[str, tuple[list[int], dict[str, list[float]]]] = {}
    for held in RESULT_SOURCES:
        train_rows = [r for r in all_rows if r["src"] != held]
        idx = [pos[id(r)] for r in train_rows]
        model = fit(x_all[idx], y_all[idx], cell_weights(train_rows), c)
        test = [r for r in base if r["src"] == held]
        # Prompts are scored as a message (elicitation/sampling): the prompt classifier's kind. Tool
        # results are scored by the segment model (training.train_results).
        sc = engine_scores(test, model, "sampling")
        y = [r["label"] for r in test]
        results[f"untrusted text (message kinds): {held} held out"] = metrics(y, sc)
        loso[held] = (y, sc)
        record(held, f"{held} prompts", "sampling", "source held out", y, sc)
        group = "tool_result:bipia" if held == "bipia" else "tool_result:prompts"
        negatives[group] += [
            max(s, st) for s, st, t in zip(sc["engine"], sc["strong"], y, strict=True) if t == 0
        ]
        if held == "slabs":
            ya = [r for r in base if r["src"] == "yanismiraoui"]
            ya_sc = engine_scores(ya, model, "sampling")
            # A strong rule flags regardless of the threshold: count it as a score of 1.
            negatives["yanis_pos"] = [
                max(a, b) for a, b in zip(ya_sc["engine"], ya_sc["strong"], strict=True)
            ]
            record(
                "yanismiraoui",
                "yanismiraoui prompts (attacks only)",
                "sampling",
                "source held out (with S-Labs)",
                [1] * len(ya),
                ya_sc,
            )
        log(f"held out {held}: {time.time() - t0:.0f}s")
    thr_msg = float(np.quantile(negatives["tool_result:prompts"], 0.99))
    for held, (y_h, sc_h) in loso.items():
        results[f"untrusted text (message kinds): {held} held out"]["at shipped threshold"] = operating_point(
            y_h, sc_h, thr_msg
        )

    return results, negatives


def results_only(rows: list[Row], args: argparse.Namespace, log: Any) -> None:
    """Re-run the tool-result evaluation, update its rows, threshold and out-of-fold scores, and
    refit the segment model; the text model's weights, rows and thresholds are kept."""
    results_path = REPO / "training" / "results.json"
    oof_path = REPO / "training" / "oof_scores.json.gz"
    results = json.loads(results_path.read_text(encoding="utf-8"))
    with gzip.open(oof_path, "rt", encoding="utf-8") as fh:
        OOF.update(json.load(fh))
    seg_res, seg_neg = train_results.evaluate(rows, args.c_results, args.n_results, args.seed, log)
    summary = train_results.summarize(seg_res, seg_neg)
    results["thresholds"]["tool_result"] = round(float(summary.pop("threshold")), 4)
    results = {k: v for k, v in results.items() if not k.startswith("tool_result")}
    results.update(summary)
    for name in [n for n, e in OOF.items() if e["kind"] == "tool_result"]:
        del OOF[name]
    for v in seg_res.values():
        ys, sc = v["scores"]
        record(v["name"], v["file"], "tool_result", v["held_out"], ys, sc)
    results_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    with gzip.open(oof_path, "wt", encoding="utf-8") as fh:
        json.dump(OOF, fh)
    with np.load(args.out / "model.npz") as npz:
        weights = npz["weights"]
    meta = json.loads((args.out / "model.json").read_text(encoding="utf-8"))
    segment = train_results.train_final(rows, args.c_results, args.n_results, args.seed, log)
    np.savez_compressed(
        args.out / "model.npz", weights=weights, segment_weights=segment.weights.astype(np.float16)
    )
    meta["segment_bias"] = segment.bias
    meta["thresholds"]["tool_result"] = results["thresholds"]["tool_result"]
    (args.out / "model.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=2))


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Train (and evaluate) the mcpwarden detection classifier.")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="directory of the shared labelled data")
    ap.add_argument("--out", type=Path, default=REPO / "src" / "mcpwarden" / "detect" / "data")
    ap.add_argument("--eval", action="store_true", help="cross-validate by source/server and set thresholds")
    ap.add_argument("--n-generated", type=int, default=6000)
    ap.add_argument("--c", type=float, default=4.0, help="inverse L2 regularisation strength")
    ap.add_argument("--c-results", type=float, default=1.0, help="C of the tool-result segment model")
    ap.add_argument("--n-results", type=int, default=3000, help="generated poisoned tool results")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--results-only",
        action="store_true",
        help="re-evaluate and refit only the tool-result (segment) model; keep the text model",
    )
    ap.add_argument(
        "--smoke", action="store_true", help="tiny subsample, to test the pipeline (writes nothing)"
    )
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    random.seed(args.seed)
    np.random.seed(args.seed)
    rows = load_rows(args.data)
    if args.smoke:
        per_src: dict[str, int] = defaultdict(int)
        rng = random.Random(0)
        rng.shuffle(rows)
        kept = []
        for r in rows:
            per_src[r["src"]] += 1
            if per_src[r["src"]] <= 250:
                kept.append(r)
        rows = kept
        args.n_generated = 400
        args.n_results = 300
        args.eval = True
    tools = load_tools(args.data)
    gen = list(generate(tools, args.n_generated, args.n_generated // 2, args.seed))
    for r in gen:
        r["src"] = "generated" if r["label"] == 1 else "generated-benign"
        r["train_kind"] = "tool_description"
    log(f"{len(rows)} corpus rows, {len(gen)} generated")

    thresholds: dict[str, float]
    results: dict[str, Any] = {}
    results_path = REPO / "training" / "results.json"
    if args.results_only:
        results_only(rows, args, log)
        return
    if args.eval:
        results, neg = evaluate(rows, gen, args.c, log)
        seg_res, seg_neg = train_results.evaluate(rows, args.c_results, args.n_results, args.seed, log)
        seg_summary = train_results.summarize(seg_res, seg_neg)
        td = float(np.quantile(neg["tool_description"], 0.99))
        # Arguments, elicitation and sampling messages are short prompts: 1 % FPR on benign prompts.
        tp = float(np.quantile(neg["tool_result:prompts"], 0.99))
        thresholds = {
            "tool_description": td,
            "server_instructions": td,
            "tool_result": float(seg_summary.pop("threshold")),
            "argument": tp,
            "elicitation": tp,
            "sampling": tp,
        }
        results.update(seg_summary)
        for v in seg_res.values():
            ys, sc = v["scores"]
            record(v["name"], v["file"], "tool_result", v["held_out"], ys, sc)
        results[
            "yanismiraoui (multilingual, positives only; slabs held out): TPR at shipped message threshold"
        ] = round(float(np.mean(np.array(neg["yanis_pos"]) >= tp)), 4)
        results["thresholds"] = {k: round(v, 4) for k, v in thresholds.items()}
        if args.smoke:
            print(json.dumps(results, indent=2))
            return
        results_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        with gzip.open(REPO / "training" / "oof_scores.json.gz", "wt", encoding="utf-8") as fh:
            json.dump(OOF, fh)
    else:
        thresholds = json.loads(results_path.read_text(encoding="utf-8"))["thresholds"]

    all_rows = rows + gen
    x = featurize(all_rows)
    y = np.array([r["label"] for r in all_rows])
    model = fit(x, y, cell_weights(all_rows), args.c)
    args.out.mkdir(parents=True, exist_ok=True)
    segment = train_results.train_final(rows, args.c_results, args.n_results, args.seed, log)
    np.savez_compressed(
        args.out / "model.npz",
        weights=model.weights.astype(np.float16),
        segment_weights=segment.weights.astype(np.float16),
    )
    meta = {
        "bits": BITS,
        "bias": model.bias,
        "segment_bias": segment.bias,
        "thresholds": thresholds,
        "c": args.c,
        "seed": args.seed,
        "n_train": len(all_rows),
        "n_generated": len(gen),
        "trained_on": sorted({r["src"] for r in all_rows}),
    }
    (args.out / "model.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    log(f"wrote {args.out / 'model.npz'} ({(args.out / 'model.npz').stat().st_size / 1e6:.2f} MB)")
    if results:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
