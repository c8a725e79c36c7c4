"""Grain size from thick, broken boundaries: raw mask against the thinned, closed network.

Run from the project root:
    python benchmarks/boundary_thinning.py
Reads ../shared/data/TBM-grain-boundaries-dev (40 crops of 256 x 256 px with their true boundary
maps, labels_index/); prints a table and writes benchmarks/results/boundary_thinning.json.

The true boundary maps are thin and closed (about 18 % of the pixels). A network predicts them
thick and broken (44-50 % in issue 25), so each truth is turned into a "thick predicted" map with
napari_matseg.testing.boundaries.thick_broken_boundaries: grown by a disk of radius ``widen`` px
(3 to 6) and cut across its lines by 4, then 12 gaps (``--gaps``) of 2 to 4 px, away from
junctions and from each other. Every map
is measured through napari_matseg.api.measure (ASTM E112 planimetric and mean lineal intercept),
once on the raw mask and once on the closed network (the package's default rule), and compared
with the truth measured as drawn (raw mask). The pixel size is set to 1 µm: a difference of G
does not depend on it. Per crop ΔG = G(thick map) - G(truth); the table gives the mean ΔG and the
mean |ΔG| over the crops, and the mean |ΔG| of the per-source-image means (crops of one source
image are alike).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
from PIL import Image

from napari_matseg import api
from napari_matseg.core.measure import BoundaryNetworkConfig
from napari_matseg.testing.boundaries import thick_broken_boundaries

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "TBM-grain-boundaries-dev"
CLASSES = ["grain", "boundary"]
PROCEDURES = ("planimetric", "intercept")


def read_truths(folder: Path) -> dict[str, np.ndarray]:
    """Return the true boundary maps by crop name, as label maps (1 grain, 2 boundary)."""
    return {path.stem: np.where(np.asarray(Image.open(path)) == 1, 2, 1).astype(np.uint8)
            for path in sorted((folder / "labels_index").glob("*.png"))}


def measure_g(maps: dict[str, np.ndarray], network: BoundaryNetworkConfig | None) -> dict:
    """Return {crop: (G planimetric, G intercept)} of label maps measured through the API."""
    options = api.MeasureOptions(grain_boundaries="boundary", pixel_size=1.0,
                                 boundary_network=network)
    report = api.measure(list(maps.items()), CLASSES, options).wait()
    return {m.name: (m.grains.astm_g_planimetric, m.grains.astm_g_intercept) for m in report.images}


def summarise(deltas: dict[str, tuple[float, float]]) -> dict:
    """Return, per procedure, the mean ΔG, the mean |ΔG| over crops and over source images."""
    out = {}
    for i, procedure in enumerate(PROCEDURES):
        values = np.array([d[i] for d in deltas.values()])
        by_source: dict[str, list[float]] = {}
        for crop, d in deltas.items():
            by_source.setdefault(crop.split("-")[0], []).append(d[i])
        source_means = np.array([np.mean(v) for v in by_source.values()])
        out[procedure] = {"mean": round(float(values.mean()), 3),
                          "mean_abs": round(float(np.abs(values).mean()), 3),
                          "mean_abs_by_source": round(float(np.abs(source_means).mean()), 3)}
    return out


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--widen", type=int, nargs="+", default=[3, 4, 5, 6],
                   help="radius (px) by which the true boundaries are grown")
    p.add_argument("--gaps", type=int, nargs="+", default=[4, 12],
                   help="gaps cut into each crop's boundaries")
    p.add_argument("--gap-range", type=int, nargs=2, default=[2, 4], metavar=("MIN", "MAX"))
    p.add_argument("--out", type=Path,
                   default=Path(__file__).parent / "results" / "boundary_thinning.json")
    args = p.parse_args(argv)
    network = BoundaryNetworkConfig()
    truths = read_truths(args.data)
    started = time.perf_counter()
    truth_g = measure_g(truths, None)
    truth_thinned = measure_g(truths, network)
    rows = [{"widen": 0, "gaps": 0, "boundary_share": round(float(np.mean(
        [(t == 2).mean() for t in truths.values()])), 3), "raw": summarise(
            {c: (0.0, 0.0) for c in truths}), "thinned": summarise(
            {c: tuple(np.subtract(truth_thinned[c], truth_g[c])) for c in truths})}]
    per_crop = {}
    for gaps in args.gaps:
        for widen in args.widen:
            thick = {crop: np.where(thick_broken_boundaries(t == 2, widen, gaps,
                                                            tuple(args.gap_range), seed=i), 2, 1)
                     for i, (crop, t) in enumerate(truths.items())}
            raw, thinned = measure_g(thick, None), measure_g(thick, network)
            raw_d = {c: tuple(np.subtract(raw[c], truth_g[c])) for c in truths}
            thin_d = {c: tuple(np.subtract(thinned[c], truth_g[c])) for c in truths}
            share = float(np.mean([(m == 2).mean() for m in thick.values()]))
            rows.append({"widen": widen, "gaps": gaps, "boundary_share": round(share, 3),
                         "raw": summarise(raw_d), "thinned": summarise(thin_d)})
            per_crop[f"widen {widen}, {gaps} gaps"] = {
                c: {"raw": np.round(raw_d[c], 3).tolist(),
                    "thinned": np.round(thin_d[c], 3).tolist()} for c in truths}
    seconds = time.perf_counter() - started
    print(f"TBM development subset, {len(truths)} crops; rule: {network.describe()}")
    print("ΔG = G(map) - G(truth as drawn); mean ΔG / mean |ΔG| over crops; widen 0 = the truth itself")
    print(f"{'widen px':>8} {'gaps':>4} {'share':>6} | {'planimetric raw':>16} {'thinned':>13} |"
          f" {'intercept raw':>14} {'thinned':>13}")
    for r in rows:
        cells = [f"{r[v][p]['mean']:+.2f} / {r[v][p]['mean_abs']:.2f}"
                 for p in PROCEDURES for v in ("raw", "thinned")]
        print(f"{r['widen']:>8} {r['gaps']:>4} {r['boundary_share']:>6.1%} | {cells[0]:>16} "
              f"{cells[1]:>13} | {cells[2]:>14} {cells[3]:>13}")
    print(f"{seconds:.1f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "data": "TBM-grain-boundaries-dev", "crops": len(truths), "rule": network.describe(),
        "gap_range_px": args.gap_range, "pixel_size_um": 1.0, "commit": commit(),
        "machine": platform.platform(), "seconds": round(seconds, 1), "rows": rows,
        "truth_g": {c: np.round(g, 3).tolist() for c, g in truth_g.items()},
        "per_crop_delta_g": per_crop}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
