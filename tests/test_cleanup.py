import numpy as np
import pytest

from napari_matseg.core.cleanup import class_regions, parse_min_area, remove_small_regions
from napari_matseg.core.errors import InputError
from napari_matseg.core.predict import PredictConfig, predict_image

NAMES = ["matrix", "MA", "defect"]


def test_small_regions_take_the_class_around_them():
    labels = np.ones((60, 60), np.uint8)
    labels[:2] = 0                      # information band: never filled, never a neighbour
    labels[10:13, 10:13] = 2            # 9-px speckle inside class 1
    labels[30:45, 30:45] = 2            # 225-px region: kept
    labels[50:56, 5:20] = 3             # class 3 around a speckle of class 2
    labels[52:54, 10:12] = 2
    labels[20:23, 40:43] = 2            # two speckles touching at a corner: one 18-px region
    labels[23:26, 43:46] = 2
    out = remove_small_regions(labels, {2: 16})
    assert (out[10:13, 10:13] == 1).all()
    assert (out[30:45, 30:45] == 2).all()
    assert (out[52:54, 10:12] == 3).all()
    assert (out[20:26, 40:46][labels[20:26, 40:46] == 2] == 2).all()
    assert (out[:2] == 0).all()
    np.testing.assert_array_equal(out[labels != 2], labels[labels != 2])
    np.testing.assert_array_equal(labels[10:13, 10:13], 2), "the input is not modified"
    np.testing.assert_array_equal(remove_small_regions(labels, {}), labels)


def test_a_region_with_nothing_else_around_it_is_kept():
    labels = np.zeros((20, 20), np.uint8)
    labels[5:8, 5:8] = 1
    np.testing.assert_array_equal(remove_small_regions(labels, {1: 100}), labels)


def test_min_area_is_read_by_class_name_or_number():
    assert parse_min_area("500", NAMES) == {1: 500, 2: 500, 3: 500}
    assert parse_min_area("ma=500, Defect=2000", NAMES) == {2: 500, 3: 2000}
    assert parse_min_area(["3=40", "100"], NAMES) == {1: 100, 2: 100, 3: 100}
    assert parse_min_area(["100", "3=0"], NAMES) == {1: 100, 2: 100}
    assert parse_min_area("", NAMES) == {}


@pytest.mark.parametrize("spec, message", [
    ("ferrite=10", "no class 'ferrite'"), ("4=10", "no class '4'"), ("MA=ten", "whole number"),
    ("MA=-5", "cannot be negative"), ("MA", "whole number")])
def test_unreadable_min_area_names_the_item(spec, message):
    with pytest.raises(InputError, match=message):
        parse_min_area(spec, NAMES)


def test_prediction_removes_small_regions_when_asked(trained, micrograph):
    image = micrograph[0]
    bundle = trained.to_bundle()
    plain = predict_image(bundle.model, image, bundle.preprocess.with_info_band(0), PredictConfig())
    area = {k: 150 for k in (1, 2, 3)}
    assert sum(int((class_regions(plain.labels, k)[1][1:] < 150).sum()) for k in area) > 0
    cleaned = predict_image(bundle.model, image, bundle.preprocess.with_info_band(0),
                            PredictConfig(min_region_area=area))
    np.testing.assert_array_equal(cleaned.labels, remove_small_regions(plain.labels, area))
    assert (cleaned.labels != plain.labels).any()


def test_many_specks_are_cleaned_in_one_pass():
    labels = np.ones((200, 300), np.uint8)
    labels[5:195:4, 5:295:4] = 2                 # 3600 one-pixel specks
    labels[100:140, 100:160] = 3                 # a large region with specks of class 2 inside
    labels[110:130:4, 110:150:4] = 2
    out = remove_small_regions(labels, {2: 2, 9: 5})
    assert (out == 2).sum() == 0
    assert (out[110:130, 110:150] == 3).all()
    assert (out[labels == 1] == 1).all()
