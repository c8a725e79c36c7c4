"""Grain size from boundaries as a metallographer draws them: thick, broken predicted boundaries
thinned to a closed network give the grain size of the thin truth; and numbers resting on a class
the model's self-check flags say so."""

import csv

import numpy as np
import pytest

from napari_matseg import api
from napari_matseg.cli import main
from napari_matseg.core.imageio import write_labels
from napari_matseg.core.measure import (BoundaryNetworkConfig, closed_network, grain_size,
                                        self_check_doubts)
from napari_matseg.core.errors import InputError
from napari_matseg.testing.boundaries import thick_broken_boundaries
from napari_matseg.testing.synthetic import voronoi_grains

NETWORK = BoundaryNetworkConfig()


def _grains(mask: np.ndarray, network=NETWORK):
    return grain_size(np.where(mask, 2, 1), 2, 1.0, network=network)


@pytest.mark.parametrize("seed", [0, 1])
def test_thinning_gives_thick_broken_boundaries_the_grain_size_of_the_thin_truth(seed):
    truth = voronoi_grains((400, 400), 150, seed=seed)
    predicted = thick_broken_boundaries(truth == 2, widen=4, gaps=40, seed=seed)
    assert 0.35 < predicted.mean() < 0.55, "as thick as the predictions of issue 25"
    true = grain_size(truth, 2, 1.0)
    raw = _grains(predicted, None)
    thinned = _grains(predicted)
    assert abs(thinned.astm_g_planimetric - true.astm_g_planimetric) < 0.25
    assert abs(thinned.astm_g_intercept - true.astm_g_intercept) < 0.25
    assert raw.astm_g_planimetric < true.astm_g_planimetric - 0.4, "gaps merge grains"
    assert raw.astm_g_intercept < true.astm_g_intercept - 0.6, "thick lines swallow crossings"
    assert thinned.rule == NETWORK.describe() and raw.rule == "raw mask"
    assert thinned.boundaries.mean() < 0.1


def test_closed_lines_give_the_same_grain_size_however_thick_they_are_drawn():
    one_pixel = voronoi_grains((300, 300), 80, boundary=1, seed=3)
    five_pixels = voronoi_grains((300, 300), 80, boundary=3, seed=3)
    drawn = grain_size(one_pixel, 2, 1.0)
    assert _grains(one_pixel == 2).grains == drawn.grains
    thinned, raw = _grains(five_pixels == 2), _grains(five_pixels == 2, None)
    assert thinned.astm_g_planimetric == pytest.approx(drawn.astm_g_planimetric, abs=0.05)
    assert thinned.astm_g_intercept == pytest.approx(drawn.astm_g_intercept, abs=0.15)
    assert raw.astm_g_intercept < drawn.astm_g_intercept - 0.4


def _band_with_gap(gap: int) -> np.ndarray:
    mask = np.zeros((100, 100), bool)
    mask[:, 45:55] = True
    mask[50:50 + gap, 45:55] = False
    return mask


def test_a_gap_up_to_max_gap_is_bridged_and_a_wider_one_is_not():
    assert _grains(_band_with_gap(0), None).grains == 1.0  # two edge grains, half each
    assert _grains(_band_with_gap(3), None).grains == 0.5
    assert _grains(_band_with_gap(3)).grains == 1.0
    assert _grains(_band_with_gap(3), BoundaryNetworkConfig(max_gap=0)).grains == 0.5
    assert _grains(_band_with_gap(14)).grains == 0.5


def test_a_boundary_leaving_the_image_reaches_its_edge():
    mask = np.zeros((80, 120), bool)
    mask[30:42, :] = True  # a thick band across the whole image
    network = closed_network(mask)
    assert network[:, 0].any() and network[:, -1].any()
    assert _grains(mask).grains == 1.0


def test_spurs_and_specks_under_their_size_are_dropped():
    mask = np.zeros((120, 120), bool)
    mask[20, 20:101] = mask[100, 20:101] = True
    mask[20:101, 20] = mask[20:101, 100] = True   # a closed square
    mask[21:26, 60] = True                        # a 5-px spur inside it
    mask[60, 21:36] = True                        # a 15-px branch
    mask[50:53, 70:73] = True                     # a speck of 9 pixels
    network = closed_network(mask, BoundaryNetworkConfig(min_spur=8, min_speck=20))
    assert not network[22:26, 60].any()
    assert network[60, 22:35].all()
    assert not network[50:53, 70:73].any()
    assert network[20, 21:100].all() and network[100, 21:100].all()
    assert _grains(mask).grains_inside == 1


def test_the_network_rule_is_a_checked_config():
    with pytest.raises(InputError, match="largest gap"):
        BoundaryNetworkConfig(max_gap=-1)
    with pytest.raises(InputError, match="BoundaryNetworkConfig"):
        api.MeasureOptions(boundary_network=4)
    assert "gaps up to 6 px" in BoundaryNetworkConfig(max_gap=6).describe()


def test_the_report_states_the_rule_and_keeps_the_network_when_asked():
    truth = voronoi_grains((200, 200), 40, seed=1)
    thick = np.where(thick_broken_boundaries(truth == 2, widen=3, gaps=5), 2, 1)
    options = api.MeasureOptions(grain_boundaries="boundary", pixel_size=0.5, keep_networks=True)
    report = api.measure([("a", thick)], ["grain", "boundary"], options).wait()
    assert report.rows[0]["grain boundaries counted on"] == NETWORK.describe()
    assert report.rows[-1]["grain boundaries counted on"] == NETWORK.describe()
    network = report.images[0].grains.boundaries
    assert network.shape == thick.shape and network.sum() < (thick == 2).sum() / 3
    raw = api.measure([("a", thick)], ["grain", "boundary"],
                      api.MeasureOptions(grain_boundaries="boundary", pixel_size=0.5,
                                         boundary_network=None)).wait()
    assert raw.rows[0]["grain boundaries counted on"] == "raw mask"
    assert raw.images[0].grains.boundaries is None, "not kept unless asked"
    assert raw.rows[0]["astm_g_planimetric"] < report.rows[0]["astm_g_planimetric"]


DOUBTFUL_BOUNDARY = {"recall": {"1": 0.97, "2": 0.31}, "held_out": True,
                     "warnings": ["the model labels only 31% of the held-out strokes of "
                                  "'boundary' correctly: paint more of it"]}


def test_self_check_doubts_name_the_classes_they_rest_on():
    names = ["grain", "boundary"]
    doubts = self_check_doubts(DOUBTFUL_BOUNDARY, names)
    assert doubts.about([1]) == ""
    assert doubts.about([2]).startswith("doubtful: ") and "31%" in doubts.about([2])
    assert not self_check_doubts(None, names) and not self_check_doubts({"warnings": []}, names)
    short = self_check_doubts({"warnings": ["trained only 40 steps, fewer than the 180 the recipe "
                                            "needs: give it more steps"], "recall": {}}, names)
    assert short.about([1]) == short.about([2]) == ("doubtful: trained only 40 steps, fewer than "
                                                    "the 180 the recipe needs")
    low_recall_only = self_check_doubts({"recall": {"1": 0.2}, "warnings": []}, names)
    assert "20%" in low_recall_only.about([1]) and low_recall_only.about([2]) == ""


def test_numbers_resting_on_a_flagged_class_say_so_beside_them():
    labels = voronoi_grains((200, 200), 40, seed=2)
    options = api.MeasureOptions(grain_boundaries="boundary", particles=("grain",), pixel_size=0.5)
    job = api.measure([("a", labels), ("b", labels)], ["grain", "boundary"], options,
                      diagnosis=DOUBTFUL_BOUNDARY)
    done = [e for e in job.run() if e.kind is api.EventKind.DONE][0]
    row, summary = job.result.rows[0], job.result.rows[-1]
    columns = list(row)
    assert columns[columns.index("astm_g_intercept") + 2] == "grain size self-check"
    assert columns[columns.index("boundary area %") + 1] == "boundary area % self-check"
    assert "31%" in row["grain size self-check"] and "31%" in summary["grain size self-check"]
    assert "grain area % self-check" not in row and "grain particles self-check" not in row
    assert "doubtful" in done.message.split("\n")[1], "the grain size line says so"
    assert done.warnings and "self-check" in done.warnings[0]
    plain = api.measure([("a", labels)], ["grain", "boundary"], options).wait()
    assert not [k for k in plain.rows[0] if k.endswith("self-check")]


def test_matseg_measure_thins_by_default_and_reads_the_models_self_check(tmp_path, capsys):
    from napari_matseg.core.bundle import ModelBundle
    from napari_matseg.core.model import ModelConfig, build_model

    folder = tmp_path / "labels"
    folder.mkdir()
    for seed in range(2):
        truth = voronoi_grains((300, 300), 100, seed=seed)
        thick = np.where(thick_broken_boundaries(truth == 2, widen=4, gaps=25, seed=seed), 2, 1)
        write_labels(folder / f"m{seed}.png", thick.astype(np.uint8), ["grain", "boundary"],
                     ["#cccccc", "#000000"], pixel_size=0.5)
    model, _ = build_model(ModelConfig(num_classes=2), encoder_weights=None)
    bundle = ModelBundle(model, ["grain", "boundary"], provenance={"diagnosis": DOUBTFUL_BOUNDARY})
    path = bundle.save(tmp_path / "m.matseg")
    assert main(["measure", str(folder), "-o", str(tmp_path / "thin"), "--grain-boundaries",
                 "boundary", "--model", str(path), "--max-gap", "6"]) == 0
    printed = capsys.readouterr().out
    assert "gaps up to 6 px bridged" in printed and "doubtful" in printed
    assert main(["measure", str(folder), "-o", str(tmp_path / "raw"), "--grain-boundaries",
                 "boundary", "--raw-boundaries"]) == 0
    assert "raw mask" in capsys.readouterr().out
    thin, raw = ([r for r in csv.DictReader(open(tmp_path / d / "measurements.csv", encoding="utf-8"))]
                 for d in ("thin", "raw"))
    assert float(thin[-1]["astm_g_planimetric"]) > float(raw[-1]["astm_g_planimetric"]) + 0.2
    assert "31%" in thin[0]["grain size self-check"] and "grain size self-check" not in raw[0]


def test_grain_size_is_doubtful_where_the_boundaries_come_out_far_wider_than_painted():
    from napari_matseg.core.linewidth import class_line_widths, mean_line_width

    line = np.zeros((60, 60), bool)
    line[30:33, 5:55] = True
    assert mean_line_width(line) == pytest.approx(3, abs=0.4), "a 3-px stroke is 3 px wide"
    assert class_line_widths(np.where(line, 2, 0)) == {2: pytest.approx(3, abs=0.4)}

    truth = voronoi_grains((240, 240), 60, seed=4)
    bands = np.where(thick_broken_boundaries(truth == 2, widen=6, gaps=0, seed=4), 2, 1)
    options = api.MeasureOptions(grain_boundaries="boundary", pixel_size=0.5)
    painted_thin = {"recall": {"1": 0.9, "2": 0.9}, "warnings": [],
                    "stroke_width_px": {"1": 9.0, "2": 3.0}}
    report = api.measure([("bands", bands)], ["grain", "boundary"], options,
                         diagnosis=painted_thin).wait()
    row = report.rows[0]
    assert row["boundary width px"] >= 9
    assert "painted 3 px wide" in row["grain size self-check"]
    from napari_matseg.api.measure_job import report_summary

    assert "doubtful" in "\n".join(report_summary(report))
    painted_wide = {**painted_thin, "stroke_width_px": {"1": 9.0, "2": 12.0}}
    for diagnosis in (painted_wide, None):
        quiet = api.measure([("bands", bands)], ["grain", "boundary"], options,
                            diagnosis=diagnosis).wait()
        assert "grain size self-check" not in quiet.rows[0]


def test_a_fine_tune_records_how_wide_each_class_was_painted():
    from napari_matseg.core.finetune import AnnotatedImage, Finetuner, FinetuneConfig
    from napari_matseg.core.budget import Budget

    rng = np.random.default_rng(0)
    image = rng.random((96, 96)).astype(np.float32)
    labels = np.zeros((96, 96), np.uint8)
    labels[10:40, 10:40] = 1
    labels[60:63, 10:90] = 2
    tuner = Finetuner([AnnotatedImage(image, labels)], 2, encoder_weights=None,
                      config=FinetuneConfig(budget=Budget(steps=2), batch_size=2, crop_size=64,
                                            min_steps=1, validation_fraction=0.0))
    tuner.train()
    widths = tuner.diagnose().to_dict()["stroke_width_px"]
    assert widths["2"] == pytest.approx(3, abs=0.5) and widths["1"] > 10


def test_a_batch_gives_many_doubts_that_differ_only_in_numbers_once():
    truth = [voronoi_grains((200, 200), 40, seed=s) for s in range(5, 10)]
    maps = [(f"m{i}", np.where(thick_broken_boundaries(t == 2, widen=3 + i, gaps=0, seed=i), 2, 1))
            for i, t in enumerate(truth)]
    diagnosis = {"recall": {}, "warnings": [], "stroke_width_px": {"2": 2.0}}
    options = api.MeasureOptions(grain_boundaries="boundary", pixel_size=0.5)
    report = api.measure(maps, ["grain", "boundary"], options, diagnosis=diagnosis).wait()
    notes = [m.doubts["grain size"] for m in report.images]
    assert len(set(notes)) > 3, "each image says its own width"
    batch = report.doubts()["grain size"]
    assert batch.count("painted 2 px wide") == 1 and "and 4 more images alike" in batch
    few = api.measure(maps[:2], ["grain", "boundary"], options, diagnosis=diagnosis).wait()
    few_notes = few.doubts()["grain size"]
    assert few_notes.count("painted 2 px wide") == 2, "a few are each given"
    assert few_notes.count("doubtful") == 1 and few_notes.startswith("doubtful: "), "said once"


def test_the_painted_width_is_brought_to_the_measured_pixel_size_and_bad_values_are_ignored():
    from napari_matseg.api.measure_job import painted_width
    from napari_matseg.core.linewidth import mean_line_width

    specks = np.zeros((40, 40), bool)
    specks[5:8, 5:8] = specks[20:23, 20:23] = True
    assert mean_line_width(specks, np.zeros_like(specks)) is None, "no centre line, no width"
    trained = {"stroke_width_px": {"2": 3.0}, "stroke_pixel_size": 0.5}
    assert painted_width(trained, 2, 0.125) == pytest.approx(12.0)
    assert painted_width(trained, 2, None) == pytest.approx(3.0)
    assert painted_width({"stroke_width_px": {2: 3.0}}, 2, 0.5) == pytest.approx(3.0)
    for bad in ({"stroke_width_px": {"2": "x"}}, {"stroke_width_px": [3.0]},
                {"stroke_width_px": {"2": float("nan")}}, {"stroke_width_px": {"2": None}}, None):
        assert painted_width(bad, 2, 0.5) is None

    grid = np.ones((240, 240), np.uint8)
    grid[:, ::40] = grid[::40, :] = 2
    grid = np.where(np.maximum.reduce([np.roll(grid == 2, k, a) for k in (0, 1, 2) for a in (0, 1)]),
                    2, 1).astype(np.uint8)
    fine = np.kron(grid, np.ones((4, 4), np.uint8))
    options = api.MeasureOptions(grain_boundaries="boundary", pixel_size=0.125)
    report = api.measure([("fine", fine)], ["grain", "boundary"], options, diagnosis=trained).wait()
    assert "grain size self-check" not in report.rows[0], "12 px at 0.125 µm is 3 px at 0.5 µm"
