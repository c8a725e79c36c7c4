import json
import os

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from napari_matseg.core.bundle import ModelBundle, load_bundle, read_metadata
from napari_matseg.core.errors import BundleError
from napari_matseg.core.predict import PredictConfig, predict_image


@pytest.fixture
def bundle(trained):
    return trained.to_bundle(["matrix", "lamellar", "speckled"], ["#0000ff", "#ff8000", "#00ff00"])


def test_round_trip_keeps_predictions_and_metadata(tmp_path, bundle, micrograph):
    path = bundle.save(tmp_path / "m.matseg")
    loaded = load_bundle(path)
    assert loaded.class_names == ["matrix", "lamellar", "speckled"]
    assert loaded.class_colours == ["#0000ff", "#ff8000", "#00ff00"]
    prov = loaded.provenance
    assert prov["steps"] == 60 and prov["seed"] == 0 and len(prov["images"][0]["image_sha256"]) == 16
    assert prov["encoder_weights"].startswith("imagenet") and "package_version" in prov
    meta = read_metadata(path)
    assert meta["model"]["encoder"] == "tf_efficientnet_lite0" and meta["model"]["in_chans"] == 1
    image, _ = micrograph
    a = predict_image(bundle.model, image, bundle.preprocess.with_info_band(0), PredictConfig())
    b = predict_image(loaded.model, image, loaded.preprocess.with_info_band(0), PredictConfig())
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-6)
    assert loaded.class_prior == bundle.class_prior
    assert loaded.predict_config(tta=True).class_prior == tuple(bundle.class_prior)
    direct = predict_image(loaded.model, image, loaded.preprocess.with_info_band(0),
                           loaded.predict_config())
    np.testing.assert_array_equal(loaded.predict(image, info_band=0).labels, direct.labels)


def test_class_prior_of_the_wrong_length_is_refused(bundle):
    with pytest.raises(BundleError, match="class prior"):
        ModelBundle(bundle.model, class_prior=[0.5, 0.5])


def test_corrupt_and_foreign_files_get_clear_errors(tmp_path, bundle):
    path = bundle.save(tmp_path / "m.matseg")
    data = path.read_bytes()
    truncated = tmp_path / "truncated.matseg"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="truncated.matseg"):
        load_bundle(truncated)
    garbage = tmp_path / "garbage.matseg"
    garbage.write_bytes(b"\x00" * 100)
    with pytest.raises(BundleError, match="not a readable model bundle"):
        load_bundle(garbage)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(BundleError, match="without napari-matseg metadata"):
        load_bundle(foreign)
    with pytest.raises(BundleError, match="no such model file"):
        load_bundle(tmp_path / "missing.matseg")


def test_incompatible_weights_and_newer_format(tmp_path, bundle):
    path = bundle.save(tmp_path / "m.matseg")
    meta = read_metadata(path)
    state = {k: v.contiguous() for k, v in bundle.model.state_dict().items()}
    state.pop("head.weight")
    broken = tmp_path / "broken.matseg"
    save_file(state, str(broken), metadata={"matseg": json.dumps(meta)})
    with pytest.raises(BundleError, match="do not fit"):
        load_bundle(broken)
    newer = tmp_path / "newer.matseg"
    save_file({"w": torch.zeros(1)}, str(newer),
              metadata={"matseg": json.dumps({**meta, "format_version": 99})})
    with pytest.raises(BundleError, match="newer"):
        load_bundle(newer)


def test_a_leaky_decoder_is_written_as_a_format_older_readers_refuse(tmp_path, bundle):
    from dataclasses import replace

    from napari_matseg.core.model import SegmentationModel

    assert bundle.model.config.decoder_activation == "leaky_relu"
    assert read_metadata(bundle.save(tmp_path / "leaky.matseg"))["format_version"] == 2
    relu = SegmentationModel(replace(bundle.model.config, decoder_activation="relu"), bundle.model.encoder)
    relu.load_state_dict(bundle.model.state_dict())
    old_style = ModelBundle(relu, bundle.class_names, bundle.class_colours, bundle.preprocess)
    path = old_style.save(tmp_path / "relu.matseg")
    assert read_metadata(path)["format_version"] == 1  # still readable by every release
    assert load_bundle(path).model.config.decoder_activation == "relu"


def test_failed_write_leaves_the_old_file_whole(tmp_path, bundle, monkeypatch):
    path = bundle.save(tmp_path / "m.matseg")
    before = path.read_bytes()

    def explode(*args, **kwargs):
        with open(args[1], "wb") as f:
            f.write(b"half a model")
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", explode)
    with pytest.raises(OSError, match="disk full"):
        bundle.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.matseg"]


def test_class_names_must_match_the_model(bundle):
    with pytest.raises(BundleError, match="3 classes"):
        ModelBundle(bundle.model, ["only one"])


def test_saved_bundles_are_readable_like_any_new_file(tmp_path, bundle):
    old = os.umask(0o022)
    try:
        path = bundle.save(tmp_path / "shared.matseg")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
