import numpy as np
import pytest

from napari_matseg.core.metrics import (confusion_matrix, dice_per_class, iou_per_class, mean_iou,
                                        phase_fractions, pixel_accuracy, score)


def test_confusion_and_scores_on_a_worked_example():
    truth = np.array([0, 0, 1, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0, 2])
    cm = confusion_matrix(truth, pred, 3)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [1, 2, 0], [0, 0, 1]])
    np.testing.assert_allclose(iou_per_class(cm), [1 / 3, 2 / 4, 1.0])
    np.testing.assert_allclose(dice_per_class(cm), [2 / 4, 4 / 6, 1.0])
    assert pixel_accuracy(cm) == pytest.approx(4 / 6)
    assert mean_iou(cm, [0, 2]) == pytest.approx((1 / 3 + 1) / 2)
    s = score(cm)
    np.testing.assert_allclose(s.fraction_error, [0, 0, 0])


def test_absent_classes_do_not_count_and_ignored_pixels_are_dropped():
    truth = np.array([0, 0, 1, 9])
    pred = np.array([0, 0, 1, 1])
    cm = confusion_matrix(truth, pred, 3)
    assert np.isnan(iou_per_class(cm)[2])
    assert mean_iou(cm) == 1.0
    cm = confusion_matrix(truth, pred, 3, ignore=np.array([False, False, True, False]))
    assert cm.sum() == 2


def test_phase_fractions_with_napari_offset():
    labels = np.array([[0, 1, 1], [2, 2, 2]])
    np.testing.assert_allclose(phase_fractions(labels, 2, offset=1), [0.4, 0.6])
    np.testing.assert_allclose(phase_fractions(labels, 3), [1 / 6, 2 / 6, 3 / 6])
