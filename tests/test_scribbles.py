import numpy as np
import pytest

from napari_matseg.core.augment import AugmentConfig
from napari_matseg.core.errors import InputError
from napari_matseg.core.scribbles import (IGNORE, ScribbleCropSampler, check_scribbles,
                                          class_weights, split_strokes)
from napari_matseg.testing.simulate import simulate_scribbles


def test_bad_labels_get_clear_errors(micrograph, scribbles):
    image, _ = micrograph
    with pytest.raises(InputError, match="do not match"):
        check_scribbles(image, scribbles[:-1])
    with pytest.raises(InputError, match="nothing is painted"):
        check_scribbles(image, np.zeros_like(scribbles))
    one = np.where(scribbles == 1, 1, 0)
    with pytest.raises(InputError, match="only class 1"):
        check_scribbles(image, one)
    with pytest.raises(InputError, match="negative"):
        check_scribbles(image, scribbles - 2)
    with pytest.raises(InputError, match="integers"):
        check_scribbles(image, scribbles.astype(float))


def test_split_holds_out_whole_strokes_per_class(scribbles):
    train, val = split_strokes(scribbles, 0.3, salt=0, block=32)
    assert not ((train > 0) & (val > 0)).any()
    np.testing.assert_array_equal(np.maximum(train, val), scribbles)
    for cls in (1, 2, 3):
        assert (train == cls).any(), "every class keeps training strokes"
    assert 0.1 < (val > 0).sum() / (scribbles > 0).sum() < 0.6
    other, _ = split_strokes(scribbles, 0.3, salt=1, block=32)
    assert (other != train).any(), "another salt holds out other pieces"


def test_strokes_painted_later_keep_earlier_held_out_strokes_held_out(scribbles):
    from napari_matseg.testing import simulate_scribbles

    train, val = split_strokes(scribbles, 0.3, salt=7, block=32)
    more = scribbles.copy()
    extra = simulate_scribbles((scribbles > 0).astype(int), seed=5)
    more[(more == 0) & (extra > 0)] = 1
    train2, val2 = split_strokes(more, 0.3, salt=7, block=32)
    old = scribbles > 0
    cells_with_new = np.zeros_like(old)
    new = (more > 0) & ~old
    for r, c in zip(*np.nonzero(new)):
        cells_with_new[r // 32 * 32:(r // 32 + 1) * 32, c // 32 * 32:(c // 32 + 1) * 32] = True
    stable = old & ~cells_with_new
    was_held = stable & (val > 0)
    assert was_held.any()
    np.testing.assert_array_equal(val2[was_held], val[was_held])
    assert np.mean(val2[stable] == val[stable]) > 0.9, "a class's larger share may take a few more"


def test_class_weights_balance_unequal_painting():
    labels = np.zeros((10, 10), int)
    labels[0, :8] = 1
    labels[1, :2] = 2
    w = class_weights(labels, 3, power=1.0)
    assert w[2] == 0
    assert w[1] == pytest.approx(4 * w[0])
    assert class_weights(labels, 3, power=0.0)[:2].tolist() == [1.0, 1.0]


def test_sampler_targets_are_painted_classes_only(micrograph, scribbles):
    image, truth = micrograph
    sampler = ScribbleCropSampler([(image / 255.0, scribbles)], 48, AugmentConfig(),
                                  np.random.default_rng(0), lambda x: x)
    batch = sampler.sample(16)
    assert batch.images.shape == (16, 1, 48, 48)
    assert batch.targets.shape == (16, 48, 48)
    values = set(batch.targets.unique().tolist())
    assert values <= {IGNORE, 0, 1, 2}
    assert len(values - {IGNORE}) >= 2
    painted = (batch.targets != IGNORE).float().mean()
    assert 0 < painted < 0.5


def test_unaugmented_crops_are_exact_windows_with_their_strokes(micrograph, scribbles):
    image, _ = micrograph
    identity = AugmentConfig(scale_range=(1.0, 1.0), free_rotation=False, flips=False,
                             centre_jitter=0.0, gamma_range=(1.0, 1.0), contrast_range=(1.0, 1.0),
                             brightness=0.0, noise_std=0.0, blur_probability=0.0)
    sampler = ScribbleCropSampler([(image / 255.0, scribbles)], 32, identity,
                                  np.random.default_rng(3), lambda x: x)
    r, c = np.argwhere(scribbles[16:-16, 16:-16] > 0)[0] + 16
    sampler._centres = lambda batch: (np.array([[r, c]] * batch, dtype=float), np.zeros(batch, int))
    crops = sampler.sample(2)
    window = image[r - 16:r + 16, c - 16:c + 16] / 255.0
    np.testing.assert_allclose(crops.images[0, 0].numpy(), window, atol=1e-5)
    expected = scribbles[r - 16:r + 16, c - 16:c + 16] - 1
    np.testing.assert_array_equal(crops.targets[0].numpy(), np.where(expected >= 0, expected, IGNORE))


def test_simulated_scribbles_follow_truth_and_budget(micrograph):
    _, truth = micrograph
    s = simulate_scribbles(truth, seed=1)
    painted = s > 0
    assert (s[painted] - 1 == truth[painted]).all()
    assert set(np.unique(s[painted]).tolist()) == {1, 2, 3}
    assert 0.01 < painted.mean() < 0.05
