import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _compare_runs():
    spec = importlib.util.spec_from_file_location("compare_runs", ROOT / "benchmarks" / "compare_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(path, runs, seed=None):
    config = {} if seed is None else {"seed": seed}
    path.write_text(json.dumps({"config": config, "runs": runs}))
    return path


def _run(split, seed, miou, unpainted=None, strokes="files"):
    row = {"dataset": "MetalDAM", "strokes": strokes, "method": "matseg", "mode": "scribble",
           "split": split, "seed": seed, "miou": miou}
    if unpainted is not None:
        row["miou_shot_unpainted"] = unpainted
    return row


def test_runs_are_paired_by_split_and_seed_and_the_change_has_a_standard_error(tmp_path, capsys):
    compare = _compare_runs()
    before = _write(tmp_path / "a.json", [_run("fold0", 0, 0.30, 0.5), _run("fold1", 0, 0.40, 0.5),
                                          _run("fold0", 1, 0.20, 0.5), _run("fold2", 0, 0.90)])
    after = _write(tmp_path / "b.json", [_run("fold1", 0, 0.50, 0.6), _run("fold0", 0, 0.30, 0.4),
                                         _run("fold0", 1, 0.32, 0.5)])
    compare.main([str(before), str(after), "--out", str(tmp_path / "c.json")])
    rows = {r["score"]: r for r in json.loads((tmp_path / "c.json").read_text())["comparison"]}
    test = rows["miou"]
    assert test["n"] == 3, "fold2 ran only before: it is not compared"
    assert test["change"] == pytest.approx((0.10 + 0.0 + 0.12) / 3)
    assert (test["gained"], test["lost"]) == (2, 0)
    assert test["standard_error"] == pytest.approx(0.0371, abs=1e-3)
    assert rows["miou_shot_unpainted"]["lost"] == 1
    assert "+0.073" in capsys.readouterr().out


def test_old_files_without_seeds_count_as_their_config_seed(tmp_path):
    compare = _compare_runs()
    old = {k: v for k, v in _run("fold0", 0, 0.3).items() if k != "seed"}
    runs = compare.load_runs(_write(tmp_path / "old.json", [old], seed=1))
    assert list(runs) == [("MetalDAM", "files", "matseg", "scribble", "fold0", 1)]


def test_files_with_nothing_in_common_are_an_error(tmp_path):
    compare = _compare_runs()
    a = _write(tmp_path / "a.json", [_run("fold0", 0, 0.3)])
    b = _write(tmp_path / "b.json", [_run("fold0", 1, 0.3)])
    with pytest.raises(SystemExit, match="share no run"):
        compare.main([str(a), str(b)])
