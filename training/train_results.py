"""Training and evaluation of the tool-result (segment) classifier.

    python -m training.train_results [--data ../shared/data] [--eval]

The question this model answers differs from the prompt classifier's: not "is this prompt an
attack?" but "is this piece of *data* an instruction addressed to the model?". In a tool result
even a harmless user-style request ("Explain the theory of relativity.") is an injection (that is
BIPIA's attack), and a long e-mail or table must not dilute a one-sentence injection. So:

* examples are **windows** of 1-5 consecutive segments (lines, sentences, JSON/HTML strings,
  table cells; ``mcpwarden.detect.classifier.segment_windows``), and a text scores the maximum
  over its windows;
* positives are windows that contain an injected instruction: generated tool results
  (``training.generate_results``), BIPIA's inserted attacks (recovered by diffing against the
  clean context), and the attack prompts of S-Labs, neuralchemy and yanismiraoui as bare text;
* negatives are windows of data: generated benign results (hard negatives included), BIPIA's
  clean e-mails/tables/code, real tool definitions (registry, BFCL), the windows of poisoned
  results that do not touch the injection, and, after a first fit, the highest-scoring windows of
  every benign training text (hard-negative mining: the maximum is what gets thresholded).

Evaluation (``--eval``) never splits by row:

* **generated results**: 3 folds; each holds out a third of the injection *families*, a third of
  the carrier *types* and a third of the benign sentences; the test set is built only from them;
* **BIPIA**: grouped 5-fold over contexts and attack categories (a test attack's category and its
  context are both unseen);
* **other corpora's attacks in unseen carriers**: S-Labs / neuralchemy / yanismiraoui attack
  prompts (that corpus excluded from training) inserted into held-out carriers, against benign
  results of the same carriers.

The shipped tool_result threshold is the 99th percentile of the out-of-fold scores of benign
results (generated held-out carriers and BIPIA held-out contexts).
"""

from __future__ import annotations

import math
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from mcpwarden.detect.classifier import (
    BITS,
    SegmentModel,
    prepare_segments,
    segment_features,
    segment_windows,
)
from mcpwarden.detect.normalize import normalize
from training.generate_results import CARRIER_NAMES, FAMILY_NAMES, generate_results, set_extra_benign

Row = dict[str, Any]
Log = Callable[[str], None]


def _prep(text: str) -> str:
    return prepare_segments(normalize(text).main.lower)


def bipia_attacks(rows: Sequence[Row]) -> None:
    """Set ``meta.inj`` on BIPIA attack rows: the text minus the clean context it was put in."""
    clean = {(r["meta"]["task"], r["meta"]["context_index"]): r["text"] for r in rows if r["label"] == 0}
    for r in rows:
        if r["label"] != 1:
            continue
        ctx = clean.get((r["meta"]["task"], r["meta"]["context_index"]))
        t = r["text"]
        if ctx is None:
            continue
        i = 0
        while i < min(len(t), len(ctx)) and t[i] == ctx[i]:
            i += 1
        j = 0
        while j < min(len(t), len(ctx)) - i and t[-1 - j] == ctx[-1 - j]:
            j += 1
        inj = t[i : len(t) - j].strip()
        if len(inj) >= 8:
            r["meta"]["inj"] = inj


class Doc:
    """One text prepared for windowed training: features sorted by position, its windows, and
    the span of the injected instruction (if any and found)."""

    __slots__ = ("idx", "inj", "label", "n", "pos", "src", "we", "ws")

    def __init__(self, row: Row) -> None:
        p = _prep(row["text"])
        pos, idx = segment_features(p)
        order = np.argsort(pos, kind="stable")
        self.pos, self.idx = pos[order], idx[order]
        self.ws, self.we = segment_windows(p)
        self.src = row["src"]
        self.label = int(row["label"])
        self.n = len(p)
        self.inj: tuple[int, int] | None = None
        if self.label == 1:
            inj = row.get("meta", {}).get("inj")
            if inj is None:
                self.inj = (0, len(p))  # a bare attack prompt: all of it is the instruction
            else:
                ip = _prep(inj)
                at = p.find(ip) if ip else -1
                if at >= 0:
                    self.inj = (at, at + len(ip))

    def window(self, s: int, e: int) -> npt.NDArray[np.int64]:
        lo, hi = np.searchsorted(self.pos, [s, e])
        return self.idx[lo:hi]


def _select(doc: Doc, rng: random.Random, n_neg: int) -> list[tuple[int, int, int]]:
    """(start, end, label) windows to train on."""
    out: list[tuple[int, int, int]] = []
    ws, we = doc.ws, doc.we
    if doc.label == 1:
        if doc.inj is None:
            return []
        a, b = doc.inj
        contain = np.nonzero((ws <= a + 1) & (we >= b - 1) & ((we - ws) <= (b - a) + 300))[0]
        inside = np.nonzero((ws >= a - 1) & (we <= b + 1) & ((we - ws) >= min(40, b - a)))[0]
        cand = list(contain) if len(contain) else list(inside)
        rng.shuffle(cand)
        out += [(int(ws[i]), int(we[i]), 1) for i in cand[:4]]
        if doc.n > (b - a) + 20:
            out.append((a, b, 1))
        away = np.nonzero((we <= a) | (ws >= b))[0]
        for i in rng.sample(list(away), min(2, len(away))):
            out.append((int(ws[i]), int(we[i]), 0))
    else:
        k = min(n_neg, len(ws))
        for i in rng.sample(range(len(ws)), k):
            out.append((int(ws[i]), int(we[i]), 0))
        if len(ws) > 1:
            out.append((0, doc.n, 0))
    return out


def _matrix(items: Sequence[tuple[Doc, int, int]]) -> sparse.csr_matrix:
    indptr = [0]
    idxs: list[npt.NDArray[np.int64]] = []
    vals: list[npt.NDArray[np.float32]] = []
    for doc, s, e in items:
        f = doc.window(s, e)
        if f.shape[0] == 0:
            f = np.zeros(0, dtype=np.int64)
        idxs.append(f)
        vals.append(np.full(f.shape[0], 1.0 / math.sqrt(max(f.shape[0], 1)), dtype=np.float32))
        indptr.append(indptr[-1] + f.shape[0])
    x = sparse.csr_matrix(
        (np.concatenate(vals), np.concatenate(idxs), np.array(indptr)), shape=(len(items), 1 << BITS)
    )
    x.sum_duplicates()
    return x


def doc_logits(model: SegmentModel, doc: Doc) -> npt.NDArray[np.float64]:
    """Logit of every window of ``doc`` (the same arithmetic as ``SegmentModel.window_logits``)."""
    if doc.idx.shape[0] == 0:
        return np.array([model.bias])
    val = model.weights[doc.idx].astype(np.float64)
    sums = np.concatenate(([0.0], np.cumsum(val)))
    lo = np.searchsorted(doc.pos, doc.ws)
    hi = np.searchsorted(doc.pos, doc.we)
    c = np.maximum(hi - lo, 1)
    return model.bias + (sums[hi] - sums[lo]) / np.sqrt(c)


def doc_score(model: SegmentModel, doc: Doc) -> float:
    z = float(np.max(doc_logits(model, doc)))
    return 1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0)))


_DUMMY = np.zeros(1 << BITS, dtype=np.float32)


def engine_scores(model: SegmentModel, rows: Sequence[Row]) -> dict[str, list[float]]:
    """Rules alone, the segment classifier alone and the engine (exactly as shipped, through
    ``score_text``) on tool results; ``strong`` = a strong rule fired (flags at any threshold)."""
    from mcpwarden.detect.classifier import Model
    from mcpwarden.detect.engine import KINDS, score_text

    probe = Model(_DUMMY, 0.0, dict.fromkeys(KINDS, 1.01), {}, model)
    out: dict[str, list[float]] = {"rules": [], "classifier": [], "engine": [], "strong": []}
    for r in rows:
        out["rules"].append(score_text(r["text"], "tool_result", None).score)
        out["classifier"].append(score_text(r["text"], "tool_result", probe, use_rules=False).score)
        f = score_text(r["text"], "tool_result", probe)
        out["engine"].append(f.score)
        out["strong"].append(1.0 if f.flagged else 0.0)
    return out


def _extend(
    acc: dict[str, list[float]], ys: list[int], rows: Sequence[Row], sc: dict[str, list[float]]
) -> None:
    ys += [int(r["label"]) for r in rows]
    for k, v in sc.items():
        acc.setdefault(k, []).extend(v)


# Hard-negative mining: rounds, and windows added per benign text per round. Two rounds of the top
# four (instead of one of the top two) raised held-out TPR at 1 % FPR on five of the six
# tool-result evaluations by 0.4-1.9 points (docs/detection.md, *Model selection*).
MINE_ROUNDS = 2
MINE_TOP = 4


def fit(docs: Sequence[Doc], c: float, seed: int, log: Log, mine: bool = True) -> SegmentModel:
    rng = random.Random(seed)
    items: list[tuple[Doc, int, int]] = []
    labels: list[int] = []
    cells: list[tuple[str, int]] = []
    for d in docs:
        for s, e, y in _select(d, rng, 4):
            items.append((d, s, e))
            labels.append(y)
            cells.append((d.src, y))

    def weights() -> npt.NDArray[np.float64]:
        cnt = Counter(cells)
        w = np.array([1.0 / cnt[k] for k in cells])
        return w * (len(cells) / w.sum())

    def train() -> SegmentModel:
        x = _matrix(items)
        clf = LogisticRegression(C=c, solver="liblinear", max_iter=300)
        clf.fit(x, np.array(labels), sample_weight=weights())
        return SegmentModel(clf.coef_[0].astype(np.float16).astype(np.float32), float(clf.intercept_[0]))

    model = train()
    for _ in range(MINE_ROUNDS if mine else 0):
        # Hard negatives: the windows of benign texts the model scores highest (the max decides).
        added = 0
        for d in docs:
            if d.label == 1:
                continue
            z = doc_logits(model, d)
            for i in np.argsort(-z)[:MINE_TOP]:
                if z[i] > -1.0:
                    items.append((d, int(d.ws[i]), int(d.we[i])))
                    labels.append(0)
                    cells.append((d.src, 0))
                    added += 1
        log(f"  mined {added} hard-negative windows")
        model = train()
    return model


def as_docs(rows: Sequence[Row], src: str | None = None) -> list[Doc]:
    out = []
    for r in rows:
        if src is not None:
            r = {**r, "src": src}
        out.append(Doc(r))
    return out


def _parts(names: Sequence[str], k: int, n: int) -> tuple[list[str], list[str]]:
    test = [x for i, x in enumerate(names) if i % n == k]
    return [x for x in names if x not in test], test


_INSTRUCTION_WORDS = re.compile(
    r"\b(?:you|your|assistant|ai|llm|model|agent|claude|always|never|must|important|ignore)\b", re.I
)


def tool_sentences(rows: Sequence[Row], limit: int = 4000) -> list[str]:
    """Data-like sentences from real tool descriptions (registry, BFCL) for the benign pool of
    generated results: thousands of real sentences instead of ~90 written ones, so the 1 % FPR
    point is a quantile of varied data, not the score of one held-out hard sentence. Sentences
    that talk to the model are left out (in a tool result those would be the attack)."""
    seen: set[str] = set()
    out: list[str] = []
    for r in rows:
        if r["src"] not in ("docker", "bfcl"):
            continue
        for line in r["text"].split("\n"):
            text = line.split(":", 1)[1] if line.startswith(("description:", "- ")) and ":" in line else ""
            for sent in re.split(r"(?<=[.!?])\s+", text.strip()):
                if 20 <= len(sent) <= 200 and not _INSTRUCTION_WORDS.search(sent) and sent not in seen:
                    seen.add(sent)
                    out.append(sent)
    out.sort()
    random.Random(11).shuffle(out)
    return out[:limit]


def base_docs(rows: Sequence[Row], exclude_pos: str | None = None, with_bipia: bool = True) -> list[Doc]:
    """The corpus part of the training set (everything except generated tool results)."""
    out: list[Doc] = []
    for r in rows:
        src = r["src"]
        if src == "bipia" and not with_bipia:
            continue
        if src in ("slabs", "neuralchemy", "yanismiraoui"):
            if r["label"] != 1 or src == exclude_pos:
                continue
        elif src != "bipia":  # registry/BFCL text enters through the benign sentence pool
            continue
        out.append(Doc(r))
    return out


def evaluate(
    rows: list[Row], c: float, n_gen: int, seed: int, log: Log
) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """Out-of-fold scores per evaluation (``results[key]["scores"] = (labels, scores by mode)``)
    and the engine scores of every held-out benign result (for the threshold)."""
    t0 = time.time()
    bipia_attacks([r for r in rows if r["src"] == "bipia"])
    set_extra_benign(tool_sentences(rows))
    results: dict[str, Any] = {}
    neg_scores: dict[str, list[float]] = {"generated": [], "bipia": []}
    base_all = base_docs(rows)
    log(f"segment eval: {len(base_all)} corpus docs prepared ({time.time() - t0:.0f}s)")
    fams = list(FAMILY_NAMES)
    carriers = list(CARRIER_NAMES)
    random.Random(seed).shuffle(fams)
    random.Random(seed + 1).shuffle(carriers)

    # A. generated results: held-out injection families x carriers x benign sentences
    ys: list[int] = []
    acc: dict[str, list[float]] = {}
    for k in range(3):
        f_tr, f_te = _parts(fams, k, 3)
        c_tr, c_te = _parts(carriers, k, 3)
        train_gen = generate_results(
            n_gen, n_gen // 2, seed + k, carriers=c_tr, families=f_tr, benign_part=(-k - 1, 3)
        )
        test_gen = generate_results(
            600, 600, seed + 100 + k, carriers=c_te, families=f_te, benign_part=(k, 3)
        )
        model = fit(base_all + as_docs(train_gen, "generated-results"), c, seed, log)
        sc = engine_scores(model, test_gen)
        _extend(acc, ys, test_gen, sc)
        neg_scores["generated"] += [
            max(e, st)
            for e, st, r in zip(sc["engine"], sc["strong"], test_gen, strict=True)
            if r["label"] == 0
        ]
        log(f"  generated fold {k}: held-out families {f_te}, carriers {c_te} ({time.time() - t0:.0f}s)")
    key = "tool_result: generated results, held-out injection families x carriers x benign text (3-fold)"
    results[key] = {
        "scores": (ys, acc),
        "name": "generated-results",
        "file": "generated tool results",
        "held_out": "3-fold: injection families x carrier types x benign sentences",
    }

    # A2. held-out templates within every family (paraphrases of known attack types), with
    # carriers and benign sentences held out as above
    ys, acc = [], {}
    for k in range(3):
        c_tr, c_te = _parts(carriers, k, 3)

        def in_test(tid: str, k: int = k) -> bool:
            return int(tid.rsplit(":", 1)[1]) % 3 == k

        train_gen = generate_results(
            n_gen,
            n_gen // 2,
            seed + 20 + k,
            carriers=c_tr,
            benign_part=(-k - 1, 3),
            templates=lambda t, f=in_test: not f(t),
        )
        test_gen = generate_results(
            600, 600, seed + 120 + k, carriers=c_te, benign_part=(k, 3), templates=in_test
        )
        model = fit(base_all + as_docs(train_gen, "generated-results"), c, seed, log)
        sc = engine_scores(model, test_gen)
        _extend(acc, ys, test_gen, sc)
        log(f"  generated templates fold {k} ({time.time() - t0:.0f}s)")
    results["tool_result: generated results, held-out templates x carriers x benign text (3-fold)"] = {
        "scores": (ys, acc),
        "name": "generated-results-templates",
        "file": "generated tool results",
        "held_out": "3-fold: templates within each family x carrier types x benign sentences",
    }

    # B. BIPIA: grouped over contexts and attack categories
    bipia = [r for r in rows if r["src"] == "bipia"]
    others = [d for d in base_all if d.src != "bipia"]
    gen_all = as_docs(generate_results(n_gen, n_gen // 2, seed), "generated-results")
    rng = random.Random(13)
    ctx_fold: dict[Any, int] = {}
    cats = sorted({r["meta"]["attack_category"] for r in bipia if r["label"] == 1})
    rng.shuffle(cats)
    cat_fold = {c_: i % 5 for i, c_ in enumerate(cats)}
    for r in bipia:
        ctx_fold.setdefault((r["meta"]["task"], r["meta"]["context_index"]), rng.randrange(5))
    ys, acc = [], {}
    bipia_docs = [(r, Doc(r)) for r in bipia]
    for k in range(5):

        def fold_of(r: Row) -> tuple[int, int]:
            return ctx_fold[(r["meta"]["task"], r["meta"]["context_index"])], (
                cat_fold[r["meta"]["attack_category"]] if r["label"] == 1 else -1
            )

        train_b = [d for r, d in bipia_docs if k not in fold_of(r)]
        test_b = [r for r, d in bipia_docs if fold_of(r)[0] == k and (r["label"] == 0 or fold_of(r)[1] == k)]
        model = fit(others + gen_all + train_b, c, seed, log)
        sc = engine_scores(model, test_b)
        _extend(acc, ys, test_b, sc)
        neg_scores["bipia"] += [
            max(e, st) for e, st, r in zip(sc["engine"], sc["strong"], test_b, strict=True) if r["label"] == 0
        ]
        log(f"  bipia fold {k} ({time.time() - t0:.0f}s)")
    key = "tool_result: BIPIA, unseen contexts and unseen attack categories (grouped 5-fold)"
    results[key] = {
        "scores": (ys, acc),
        "name": "bipia",
        "file": "bipia_train.jsonl",
        "held_out": "grouped 5-fold: contexts x attack categories",
    }

    # C. another corpus's attacks inside unseen carriers (that corpus not in training)
    c_tr, c_te = _parts(carriers, 0, 2)
    train_gen = as_docs(
        generate_results(n_gen, n_gen // 2, seed + 7, carriers=c_tr, benign_part=(-1, 3)), "generated-results"
    )
    for held in ("slabs", "neuralchemy", "yanismiraoui"):
        attacks = [r["text"] for r in rows if r["src"] == held and r["label"] == 1 and len(r["text"]) < 1500]
        model = fit(base_docs(rows, exclude_pos=held) + train_gen, c, seed, log)
        test = generate_results(800, 800, seed + 50, carriers=c_te, external=attacks, benign_part=(0, 3))
        ys, acc = [], {}
        _extend(acc, ys, test, engine_scores(model, test))
        key = f"tool_result: {held} attacks (corpus held out) inside unseen carriers"
        results[key] = {
            "scores": (ys, acc),
            "name": f"{held}-in-results",
            "file": f"{held} attacks in generated results",
            "held_out": f"{held} not in training; carrier types and benign sentences held out",
        }
        if held != "yanismiraoui":
            # The same corpus as bare prompts scored as tool results (benign prompts included):
            # not a bar (a user-style request inside a result *is* BIPIA's attack), but it shows
            # what `mcpwarden detect` without a kind does to a prompt data set.
            raw = [r for r in rows if r["src"] == held]
            raw = random.Random(5).sample(raw, min(3000, len(raw)))
            ys, acc = [], {}
            _extend(acc, ys, raw, engine_scores(model, raw))
            results[f"tool_result kind on bare {held} prompts (corpus held out)"] = {
                "scores": (ys, acc),
                "name": f"{held}-as-results",
                "file": f"{held} prompts scored as tool_result",
                "held_out": f"{held} not in training (informational, not a tool-result bar)",
            }
        log(f"  external {held} ({time.time() - t0:.0f}s)")
    return results, neg_scores


def train_final(rows: list[Row], c: float, n_gen: int, seed: int, log: Log) -> SegmentModel:
    bipia_attacks([r for r in rows if r["src"] == "bipia"])
    set_extra_benign(tool_sentences(rows))
    docs = base_docs(rows) + as_docs(generate_results(n_gen, n_gen // 2, seed), "generated-results")
    return fit(docs, c, seed, log)


def main(argv: Sequence[str] | None = None) -> None:  # pragma: no cover - a thin CLI for experiments
    global MINE_ROUNDS, MINE_TOP
    import argparse
    import json
    import sys

    from training.train import DEFAULT_DATA, load_rows

    ap = argparse.ArgumentParser(description="Evaluate the tool-result segment classifier.")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--c", type=float, default=1.0)
    ap.add_argument("--n-generated", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--mine-rounds", type=int, default=MINE_ROUNDS)
    ap.add_argument("--mine-top", type=int, default=MINE_TOP)
    args = ap.parse_args(argv)
    MINE_ROUNDS, MINE_TOP = args.mine_rounds, args.mine_top

    def log(m: str) -> None:
        print(m, file=sys.stderr, flush=True)

    rows = load_rows(args.data)
    res, neg = evaluate(rows, args.c, args.n_generated, args.seed, log)
    print(json.dumps(summarize(res, neg), indent=2))


def result_threshold(neg: dict[str, list[float]]) -> float:
    """The shipped tool_result threshold: at most 1 % false positives on *each* held-out benign
    source (generated results with unseen carriers and sentences; BIPIA's real contexts), i.e.
    the larger of the two 99th percentiles. Pooling them let the easier synthetic negatives pull
    the threshold down to 2.1 % FPR on BIPIA's real e-mails and tables."""
    return max(float(np.quantile(v, 0.99)) for v in neg.values() if v)


def summarize(res: dict[str, Any], neg: dict[str, list[float]]) -> dict[str, Any]:
    """Metrics per evaluation plus the operating point at the shipped threshold."""
    from training.train import metrics, operating_point

    thr = result_threshold(neg)
    out: dict[str, Any] = {}
    for key, v in res.items():
        ys, sc = v["scores"]
        out[key] = metrics(ys, {k: sc[k] for k in ("rules", "classifier", "engine")})
        out[key]["at shipped threshold"] = operating_point(ys, sc, thr)
    out["threshold"] = round(thr, 4)
    return out


if __name__ == "__main__":
    main()
