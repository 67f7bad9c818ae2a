"""Render training/results.json and training/selection.json as the Markdown tables in docs/detection.md.

python -m training.report
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _pct(v: Any) -> str:
    return f"{100 * float(v):.1f} %" if isinstance(v, (int, float)) else "n/a"


def evaluation_table(results: dict[str, Any]) -> str:
    lines = [
        "| held-out split | pos / neg | mode | AUC | TPR @ 1 % FPR | TPR @ 5 % FPR | shipped: TPR / FPR |",
        "|---|---|---|---|---|---|---|",
    ]
    for split, value in results.items():
        if not isinstance(value, dict) or "n_pos" not in value:
            continue
        for mode in ("rules", "classifier", "engine"):
            m = value.get(mode, {})
            op = value.get("at shipped threshold") if mode == "engine" else None
            shipped = f"{_pct(op['tpr'])} / {_pct(op['fpr'])}" if op else ""
            auc = m.get("auc", float("nan"))
            lines.append(
                f"| {split} | {value['n_pos']} / {value['n_neg']} | {mode} | {auc:.3f} "
                f"| {_pct(m.get('tpr@1%fpr'))} | {_pct(m.get('tpr@5%fpr'))} | {shipped} |"
            )
    extra = [
        f"- {k}: {json.dumps(v)}" for k, v in results.items() if not (isinstance(v, dict) and "n_pos" in v)
    ]
    return "\n".join([*lines, "", *extra])


def selection_table(selection: dict[str, Any]) -> str:
    splits = [k for k in next(iter(selection.values())) if k != "mean"]
    head = "| features, C | " + " | ".join(splits) + " | mean |"
    lines = [head, "|" + "---|" * (len(splits) + 2)]
    for key, per in selection.items():
        cells = [f"{per[s]['auc']:.3f} / {_pct(per[s]['tpr@1%fpr'])}" for s in [*splits, "mean"]]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    results = json.loads((HERE / "results.json").read_text(encoding="utf-8"))
    print(evaluation_table(results))
    sel = HERE / "selection.json"
    if sel.exists():
        print()
        print("AUC / TPR @ 1 % FPR, classifier alone:")
        print()
        print(selection_table(json.loads(sel.read_text(encoding="utf-8"))))


if __name__ == "__main__":
    main()
