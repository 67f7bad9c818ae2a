"""Experiment: ONNX export, int8 accuracy check and run-time cost of the transformer stage.

    OMP_NUM_THREADS=1 nice -n 10 python -m training.transformer_speed --model /tmp/tx/run1/t1

Exports the fine-tuned window classifier (``training.transformer_cascade``) to ONNX, quantises it
dynamically to int8, checks that int8 keeps the cascade's held-out figures on generated fold 0
(re-scoring the same stage-two windows), then measures on one onnxruntime thread: ms per window,
the fraction of the benchmark's benign 1 KB / 10 KB JSON results (``bench/detect_eval.py``) whose
engine score reaches each grey-zone bound, and texts/s and p99 of scan + stage two.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np

from training.transformer_cascade import KS, LOS, _m, log, windows_of

REPO = Path(__file__).resolve().parent.parent


def export(model_dir: Path, out: Path) -> tuple[Path, Path]:
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModelForSequenceClassification

    torch.set_num_threads(1)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    fp32 = out / "window.onnx"
    ids = torch.ones(2, 12, dtype=torch.long)
    torch.onnx.export(
        model,
        (ids, torch.ones_like(ids), torch.zeros_like(ids)),
        str(fp32),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["logits"],
        dynamic_axes={n: {0: "b", 1: "t"} for n in ("input_ids", "attention_mask", "token_type_ids")}
        | {"logits": {0: "b"}},
        opset_version=17,
        dynamo=False,
    )
    int8 = out / "window.int8.onnx"
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    return fp32, int8


class Onnx:
    def __init__(self, path: Path, tokenizer_json: Path, max_len: int) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.tok = Tokenizer.from_file(str(tokenizer_json))
        self.tok.enable_truncation(max_len)
        self.tok.enable_padding()

    def __call__(self, texts: Sequence[str]) -> list[float]:
        enc = self.tok.encode_batch(list(texts))
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        z = self.sess.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )[0]
        return list(1.0 / (1.0 + np.exp(-z[:, 0])))


def accuracy_check(runners: dict[str, Any], seed: int, n_gen: int) -> dict[str, Any]:
    """Cascade on generated fold 0 (the transformer_cascade test set) with each runner."""
    from training.generate_results import CARRIER_NAMES, FAMILY_NAMES, generate_results, set_extra_benign
    from training.train import DEFAULT_DATA, load_rows
    from training.train_results import (
        _parts,
        as_docs,
        base_docs,
        bipia_attacks,
        engine_scores,
        fit,
        tool_sentences,
    )

    rows = load_rows(DEFAULT_DATA)
    bipia_attacks([r for r in rows if r["src"] == "bipia"])
    set_extra_benign(tool_sentences(rows))
    fams = list(FAMILY_NAMES)
    carriers = list(CARRIER_NAMES)
    random.Random(seed).shuffle(fams)
    random.Random(seed + 1).shuffle(carriers)
    f_tr, f_te = _parts(fams, 0, 3)
    c_tr, c_te = _parts(carriers, 0, 3)
    train_gen = generate_results(n_gen, n_gen // 2, seed, carriers=c_tr, families=f_tr, benign_part=(-1, 3))
    test = generate_results(600, 600, seed + 100, carriers=c_te, families=f_te, benign_part=(0, 3))
    lin = fit(base_docs(rows) + as_docs(train_gen, "generated-results"), 1.0, seed, log)
    sc = engine_scores(lin, test)
    ys = [int(r["label"]) for r in test]
    need = [i for i, e in enumerate(sc["engine"]) if e >= min(LOS) and not sc["strong"][i]]
    wins = {i: windows_of(lin, test[i]["text"])[0][: max(KS)] for i in need}
    out: dict[str, Any] = {}
    probs: dict[str, dict[int, list[float]]] = {}
    for name, run in runners.items():
        probs[name] = {i: run(w) for i, w in wins.items()}
        res = {}
        for k in KS:
            for lo in LOS:
                final = [
                    1.0 + (e + max(probs[name][i][:k])) / 2 if i in wins and e >= lo else e
                    for i, e in enumerate(sc["engine"])
                ]
                res[f"k={k} lo={lo}"] = _m(ys, final)
        out[name] = res
    a = np.concatenate([np.array(probs["torch"][i]) for i in need])
    for name in runners:
        if name != "torch":
            b = np.concatenate([np.array(probs[name][i]) for i in need])
            out[f"{name} max |dp| vs torch"] = float(np.max(np.abs(a - b)))
            out[f"{name} mean |dp| vs torch"] = float(np.mean(np.abs(a - b)))
    return out


def timing(run: Any, lo_list: Sequence[float], ks: Sequence[int], seconds: float) -> dict[str, Any]:
    from mcpwarden.detect import scan
    from mcpwarden.detect.classifier import load_model

    spec = importlib.util.spec_from_file_location("detect_eval", REPO / "bench" / "detect_eval.py")
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rng = random.Random(0)
    r1 = [bench.synthetic_result(1024, rng) for _ in range(300)]
    r10 = [bench.synthetic_result(10 * 1024, rng) for _ in range(60)]
    seg = load_model().segment
    assert seg is not None
    out: dict[str, Any] = {}
    # ms per window on real windows (top windows of the benchmark texts), batches of 1 and k
    wins = [w for t in r1[:100] + r10[:20] for w in windows_of(seg, t)[0][:4]]
    for k in (1, 4):
        t0 = time.process_time()
        n = 0
        for i in range(0, len(wins), k):
            run(wins[i : i + k])
            n += len(wins[i : i + k])
        out[f"ms_per_window_batch{k}"] = round((time.process_time() - t0) / n * 1e3, 3)
    for name, texts in (("1KB", r1), ("10KB", r10)):
        f = [scan(t, "tool_result") for t in texts]
        for lo in lo_list:
            out[f"{name} benign stage2 fraction lo={lo}"] = round(
                float(np.mean([x.score >= lo and not x.flagged for x in f])), 4
            )

    def cascade(t: str, lo: float, k: int) -> float:
        f = scan(t, "tool_result")
        if f.flagged or f.score < lo:
            return f.score
        w, _ = windows_of(seg, t)  # recomputed here; an integration would reuse the engine's windows
        return 1.0 + (f.score + max(run(w[:k]))) / 2

    for name, texts in (("1KB", r1), ("10KB", r10)):
        out[f"{name} engine only"] = bench.run(lambda t: scan(t, "tool_result"), texts, seconds)
        for lo in lo_list:
            for k in ks:
                out[f"{name} cascade lo={lo} k={k}"] = bench.run(
                    lambda t, lo=lo, k=k: cascade(t, lo, k), texts, seconds
                )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=Path("/tmp/tx/run1/t1"))
    ap.add_argument("--out", type=Path, default=Path("/tmp/tx/onnx"))
    ap.add_argument("--max-len", type=int, default=64)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--n-generated", type=int, default=3000)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--skip-accuracy", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    fp32, int8 = export(args.model, args.out)
    res: dict[str, Any] = {
        "onnx_fp32_mb": round(fp32.stat().st_size / 1e6, 1),
        "onnx_int8_mb": round(int8.stat().st_size / 1e6, 1),
    }
    log(f"exported: {res}")
    tj = args.model / "tokenizer.json"
    runners: dict[str, Any] = {
        "onnx_fp32": Onnx(fp32, tj, args.max_len),
        "onnx_int8": Onnx(int8, tj, args.max_len),
    }
    if not args.skip_accuracy:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from training.transformer_cascade import Scorer

        torch.set_num_threads(1)
        tok = AutoTokenizer.from_pretrained(args.model)
        model = AutoModelForSequenceClassification.from_pretrained(args.model).eval()
        runners["torch"] = Scorer(tok, model, args.max_len)
        res["accuracy_generated_fold0"] = accuracy_check(runners, args.seed, args.n_generated)
        log(json.dumps(res["accuracy_generated_fold0"])[:3000])
    for name in ("onnx_int8", "onnx_fp32"):
        res[f"timing_{name}"] = timing(runners[name], LOS, KS, args.seconds)
        log(json.dumps(res[f"timing_{name}"])[:3000])
        (args.out / "speed.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
