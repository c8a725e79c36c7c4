"""Measurements against known answers: ASTM E112 grain size of tessellations of known density,
discs of known diameters, the standard's reference values, confidence intervals, and the pixel
size read from each vendor's TIFF metadata."""

import csv

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_matseg import api
from napari_matseg.cli import main
from napari_matseg.core.calibration import calibration_from_line, class_names_in, read_calibration
from napari_matseg.core.errors import InputError
from napari_matseg.core.imageio import write_labels
from napari_matseg.core.measure import (area_fractions, astm_g_from_density, astm_g_from_intercept,
                                        grain_size, particle_statistics, summarise_fractions)
from napari_matseg.testing.synthetic import discs, voronoi_grains


def test_the_astm_e112_formulas_give_the_standards_reference_values():
    # E112: G = 0 is 7.75 grains per mm² at 1x and a mean intercept of 0.32 mm; each step of G
    # doubles the grains per area (G = 8: 1984 per mm², mean intercept 0.0200 mm)
    assert astm_g_from_density(7.75) == pytest.approx(0.0, abs=0.01)
    assert astm_g_from_intercept(0.32) == pytest.approx(0.0, abs=0.01)
    assert astm_g_from_density(7.75 * 2 ** 8) == pytest.approx(8.0, abs=0.01)
    assert astm_g_from_intercept(0.0200) == pytest.approx(8.0, abs=0.01)
    assert np.isnan(astm_g_from_density(0))


@pytest.mark.parametrize("grains, boundary, seed", [(60, 1, 0), (250, 2, 1), (900, 1, 2)])
def test_grain_size_of_tessellations_of_known_density(grains, boundary, seed):
    labels = voronoi_grains((800, 800), grains, boundary=boundary, seed=seed)
    pixel = 0.8  # µm: the image is 0.4096 mm²
    true_g = astm_g_from_density(grains / (800 * 800 * (pixel * 1e-3) ** 2))
    g = grain_size(labels, 2, pixel)
    assert g.astm_g_planimetric == pytest.approx(true_g, abs=0.3)
    assert g.astm_g_intercept == pytest.approx(true_g, abs=0.5)
    assert g.grains_per_mm2 == pytest.approx((g.grains_inside + 0.5 * g.grains_intercepted) / g.area_mm2)
    assert g.mean_intercept_um == pytest.approx(g.line_length_px * pixel / g.crossings)
    assert len(g.intercept_lengths) > 0 and g.intercept_lengths.min() > 0


def test_grain_counts_follow_the_edge_rule():
    labels = np.ones((100, 100), np.uint8)
    labels[50, :] = 2  # one horizontal boundary: two grains, both touching the image edge
    labels[20:31, 40] = labels[20:31, 60] = 2
    labels[20, 40:61] = labels[30, 40:61] = 2  # a closed grain inside
    g = grain_size(labels, 2, 1.0)
    assert (g.grains_inside, g.grains_intercepted) == (1, 2)
    assert g.grains == 2.0
    assert grain_size(labels, 2).grains_per_mm2 is None  # no pixel size, no density


def test_discs_of_known_diameters():
    labels, placed = discs((300, 400), [10, 16, 24, 30, 40], seed=3)
    stats = particle_statistics(labels, 2, pixel_size=0.25)
    assert stats.whole == 5 and stats.at_edge == 0 and stats.unit == "µm"
    measured = sorted(p["ecd (µm)"] for p in stats.particles)
    expected = sorted(d * 0.25 for *_, d in placed)
    np.testing.assert_allclose(measured, expected, rtol=0.03)
    assert all(p["aspect ratio"] == pytest.approx(1, abs=0.1) for p in stats.particles)
    assert stats.mean_nearest_neighbour > 0
    assert stats.per_mm2 == pytest.approx(5 / (300 * 400 * (0.25e-3) ** 2))


def test_particles_cut_by_the_edge_count_half_and_have_no_size():
    labels = np.ones((100, 100), np.uint8)
    labels[40:50, 40:50] = 2
    labels[0:6, 10:20] = 2     # cut by the top edge
    labels[95:100, 70:80] = 2  # cut by the band below row 97 as well
    stats = particle_statistics(labels, 2, 1.0, content_rows=97)
    assert (stats.whole, stats.at_edge) == (1, 2)
    assert stats.per_mm2 == pytest.approx(2 / (97 * 100 * 1e-6))
    assert stats.mean_ecd == pytest.approx(2 * np.sqrt(100 / np.pi))


def test_fraction_confidence_interval_is_student_t():
    maps = []
    for share in (0.2, 0.3, 0.4):
        m = np.ones((10, 100), np.uint8)
        m[:, :int(share * 100)] = 2
        maps.append(area_fractions(m, 2))
    summary = summarise_fractions(maps)
    assert summary.mean[1] == pytest.approx(0.3)
    assert summary.std[1] == pytest.approx(0.1)
    assert summary.ci95[1] == pytest.approx(4.302653 * 0.1 / np.sqrt(3), rel=1e-5)
    assert np.isnan(summarise_fractions(maps[:1]).ci95).all()
    banded = np.ones((20, 10), np.uint8)
    banded[15:] = 0
    assert area_fractions(banded, 2, content_rows=15).tolist() == [1.0, 0.0]


def _fei(path, data, width_m):
    text = f"[User]\nDate=01/02/2024\n[Scan]\nPixelWidth={width_m}\nPixelHeight={width_m}\n"
    tifffile.imwrite(path, data, extratags=[(34682, "s", 0, text, True)])


def _zeiss(path, data, nm):
    text = f"0\n0\nAP_IMAGE_PIXEL_SIZE\nImage Pixel Size = {nm} nm\nAP_WD\nWD = 5.0 mm\n"
    tifffile.imwrite(path, data, extratags=[(34118, "s", 0, text, True)])


def test_pixel_size_from_each_vendors_metadata(tmp_path):
    data = np.zeros((32, 32), np.uint8)
    _fei(tmp_path / "fei.tif", data, 4.5e-9)
    _zeiss(tmp_path / "zeiss.tif", data, 12.5)
    tifffile.imwrite(tmp_path / "imagej.tif", data, imagej=True, resolution=(1 / 0.25, 1 / 0.25),
                     metadata={"unit": "um"})
    tifffile.imwrite(tmp_path / "imagej_nm.tif", data, imagej=True, resolution=(1 / 80, 1 / 80),
                     metadata={"unit": "nm"})
    tifffile.imwrite(tmp_path / "ome.tif", data, ome=True,
                     metadata={"PhysicalSizeX": 0.3, "PhysicalSizeXUnit": "µm",
                               "PhysicalSizeY": 0.3, "PhysicalSizeYUnit": "µm"})
    tifffile.imwrite(tmp_path / "cm.tif", data, resolution=(20000, 20000), resolutionunit="CENTIMETER")
    tifffile.imwrite(tmp_path / "dpi.tif", data, resolution=(72, 72), resolutionunit="INCH")
    Image.fromarray(data).save(tmp_path / "plain.png", dpi=(96, 96))
    expected = {"fei": (0.0045, "FEI"), "zeiss": (0.0125, "ZEISS"), "imagej": (0.25, "ImageJ"),
                "imagej_nm": (0.08, "ImageJ"), "ome": (0.3, "OME"), "cm": (0.5, "TIFF resolution")}
    for stem, (size, source) in expected.items():
        found = read_calibration(tmp_path / f"{stem}.tif")
        assert found is not None and found.pixel_size == pytest.approx(size), stem
        assert source in found.source
    assert read_calibration(tmp_path / "dpi.tif") is None, "a print resolution is no calibration"
    assert read_calibration(tmp_path / "plain.png") is None
    written = write_labels(tmp_path / "l.png", np.ones((20, 20), np.uint8), ["a"], ["#ff0000"], 0.7)
    assert read_calibration(written).pixel_size == pytest.approx(0.7)
    assert class_names_in(written) == ["a"]


def test_scale_bar_line():
    calibration = calibration_from_line((10, 10), (10, 210), 50.0)
    assert calibration.pixel_size == pytest.approx(0.25) and "50 µm over 200.0 px" in calibration.source
    with pytest.raises(InputError, match="shorter than 2 pixels"):
        calibration_from_line((5, 5), (5, 6), 10)


def test_matseg_measure_writes_the_report(tmp_path, capsys):
    folder = tmp_path / "labels"
    folder.mkdir()
    for seed in range(3):
        grains = voronoi_grains((300, 400), 120, seed=seed)
        particles, _ = discs((300, 400), [8, 12, 16, 20], seed=seed)
        labels = np.where(particles == 2, 3, grains).astype(np.uint8)
        write_labels(folder / f"m{seed}.tif", labels, ["grain", "boundary", "carbide"],
                     ["#cccccc", "#000000", "#ff0000"], pixel_size=0.5)
    out = tmp_path / "report"
    assert main(["measure", str(folder), "-o", str(out), "--grain-boundaries", "boundary",
                 "--particles", "carbide"]) == 0
    printed = capsys.readouterr().out
    assert "ASTM E112 grain size G" in printed and "carbide" in printed
    rows = list(csv.DictReader(open(out / "measurements.csv", encoding="utf-8")))
    assert [r["image"] for r in rows] == ["m0.tif", "m1.tif", "m2.tif", "summary (3 images)"]
    for column in ("astm_g_planimetric", "astm_g_intercept", "mean_intercept_um", "grains_per_mm2",
                   "carbide per mm²", "carbide mean ecd (µm)", "carbide area % ±95%"):
        assert column in rows[0], column
    assert rows[0]["scale source"].startswith("ImageJ") and rows[0]["pixel size µm"] == "0.5"
    assert rows[-1]["carbide area % ±95%"] != "" and rows[0]["carbide area % ±95%"] == ""
    particles = list(csv.DictReader(open(out / "particles_carbide.csv", encoding="utf-8")))
    assert len(particles) == 12 and {"image", "ecd (µm)", "at edge"} <= set(particles[0])
    for stem in ("phase_fractions", "grain_intercepts", "particles_carbide_ecd"):
        assert (out / f"{stem}.png").stat().st_size > 1000 and (out / f"{stem}.svg").is_file()
    assert main(["measure", str(folder), "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["measure", str(folder), "-o", str(tmp_path / "r2"), "--particles", "slag"]) == 2
    assert "no class 'slag'" in capsys.readouterr().err


def test_measure_without_a_scale_reports_pixels():
    labels = voronoi_grains((200, 200), 40, seed=1)
    report = api.measure([("a", labels)], ["grain", "boundary"],
                         api.MeasureOptions(grain_boundaries="boundary", particles=("grain",))).wait()
    row = report.rows[0]
    assert row["scale source"].startswith("none") and row["astm_g_planimetric"] == ""
    assert "grain mean ecd (px)" in row


def test_plots_keep_class_names_for_their_titles_and_safe_file_stems(tmp_path):
    from napari_matseg.plots import report_figures

    labels = voronoi_grains((120, 160), 20, seed=2)
    report = api.measure([("a", labels)], ["M/A", "boundary"],
                         api.MeasureOptions(grain_boundaries="boundary", particles=("M/A",))).wait()
    labels_by_stem = {stem: figure.get_label() for stem, figure in report_figures(report).items()}
    assert labels_by_stem == {"phase_fractions": "phase fractions",
                              "grain_intercepts": "grain intercepts",
                              "particles_M_A_ecd": "M/A particles"}
    written = {path.name for path in api.write_report(report, tmp_path)}
    assert {"measurements.csv", "particles_M_A.csv", "particles_M_A_ecd.png"} <= written
