"""Compare two result files of ``benchmarks/fewshot.py`` run for run: the same data, stroke style,
method, split and seed in both, so a change is judged against the luck of one draw.

Run from the project root:  python benchmarks/compare_runs.py BEFORE.json AFTER.json [--out F]

For each (data, strokes, method) it prints the runs both files hold, their mean test mIoU before
and after, the mean change with its standard error over the runs, how many runs gained and lost,
and the same for the shot image's unpainted pixels. One seed's folds move by up to 0.1 between
draws of the held-out strokes, so a change smaller than about two standard errors is not a result.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def run_key(row: dict) -> tuple:
    """Return what identifies one run across result files."""
    return (row["dataset"], row.get("strokes", "simulator"), row["method"], row["mode"],
            row["split"], row.get("seed", 0))


def load_runs(path: Path) -> dict[tuple, dict]:
    """Return a result file's runs by :func:`run_key` (files from before ``seed`` was recorded
    count as seed 0, the benchmark's default then)."""
    data = json.loads(Path(path).read_text())
    seed = data.get("config", {}).get("seed", 0)
    return {run_key({"seed": seed, **row}): row for row in data["runs"]}


def paired(before: dict, after: dict, field: str) -> dict[tuple, np.ndarray]:
    """Return, per (data, strokes, method, mode), the (before, after) values of ``field`` for
    every run both hold."""
    groups: dict[tuple, list] = {}
    for key in sorted(set(before) & set(after)):
        a, b = before[key].get(field), after[key].get(field)
        if a is not None and b is not None:
            groups.setdefault(key[:4], []).append((a, b))
    return {k: np.array(v, dtype=float) for k, v in groups.items()}


def summarise(pairs: np.ndarray) -> dict:
    """Return the mean before and after, the mean change, its standard error, gains and losses."""
    delta = pairs[:, 1] - pairs[:, 0]
    se = float(delta.std(ddof=1) / np.sqrt(len(delta))) if len(delta) > 1 else float("nan")
    return {"n": len(delta), "before": float(pairs[:, 0].mean()), "after": float(pairs[:, 1].mean()),
            "change": float(delta.mean()), "standard_error": se,
            "gained": int((delta > 0.005).sum()), "lost": int((delta < -0.005).sum())}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    p.add_argument("--out", type=Path, help="write the comparison as JSON here")
    args = p.parse_args(argv)
    before, after = load_runs(args.before), load_runs(args.after)
    rows = []
    print("| data | strokes | method | score | runs | before | after | change ± s.e. | gained / lost |")
    print("|---|---|---|---|---|---|---|---|---|")
    for field, label in (("miou", "test mIoU"), ("miou_shot_unpainted", "shot unpainted")):
        for (dataset, style, method, mode), pairs in paired(before, after, field).items():
            s = summarise(pairs)
            rows.append({"dataset": dataset, "strokes": style, "method": method, "mode": mode,
                         "score": field, **s})
            print(f"| {dataset} | {style if mode == 'scribble' else 'dense'} | {method} | {label} | "
                  f"{s['n']} | {s['before']:.3f} | {s['after']:.3f} | "
                  f"{s['change']:+.3f} ± {s['standard_error']:.3f} | {s['gained']} / {s['lost']} |")
    if not rows:
        raise SystemExit("the two files share no run (same data, strokes, method, split and seed)")
    if args.out:
        args.out.write_text(json.dumps({"before": str(args.before), "after": str(args.after),
                                        "comparison": rows}, indent=1))


if __name__ == "__main__":
    main()
