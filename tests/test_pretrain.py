"""Self-supervised pretraining: losses, heads, view geometry, selective masking, the shared loop."""

import numpy as np
import pytest
import torch

from napari_matseg.core.budget import Budget
from napari_matseg.core.finetune import AnnotatedImage
import torch.nn.functional as F

from napari_matseg.core.bundle import load_bundle
from napari_matseg.core.errors import BundleError, InputError
from napari_matseg.core.finetune import FinetuneConfig, Finetuner
from napari_matseg.core.pretrain import MicrographPool, PretrainConfig, Pretrainer
from napari_matseg.core.pretrain.losses import class_contrast, nt_xent
from napari_matseg.core.pretrain.pool import flip_rot90
from napari_matseg.core.pretrain.pscl import (cell_classes, greedy_match, purest_cells,
                                              view_correspondence)
from napari_matseg.core.pretrain.sms import (SMS, random_tile_masks, select_hardest,
                                             tile_edges, tile_index_map)
from napari_matseg.testing.simulate import ScribbleSimulation, simulate_scribbles
from napari_matseg.testing.synthetic import voronoi_micrograph
from tiny_pretraining import tiny_config


def test_nt_xent_equals_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    t = 0.5
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n, total = 4, 0.0
    for i in range(2 * n):
        partner = (i + n) % (2 * n)
        num = torch.exp(z[i] @ z[partner] / t)
        den = sum(torch.exp(z[i] @ z[k] / t) for k in range(2 * n) if k != i)
        total += -torch.log(num / den)
    assert torch.isclose(nt_xent(z1, z2, t), total / (2 * n), atol=1e-5)


def test_class_contrast_uses_only_other_classes_as_negatives():
    emb = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    cls = torch.tensor([1, 1, 2, 2])
    separated = class_contrast(emb, cls, 0.5)
    mixed = class_contrast(emb, torch.tensor([1, 2, 1, 2]), 0.5)
    assert separated < mixed
    assert class_contrast(emb, torch.tensor([1, 1, 1, 1])) == 0


def test_matssl_gates_receive_gradients_and_move(pool):
    trainer = Pretrainer(pool, tiny_config("matssl"))
    gates = trainer.method.fusion.gates
    assert all(torch.all(g == 1) for g in gates)
    loss, _ = trainer.method(trainer.method.sample())
    loss.backward()
    assert all(g.grad is not None and g.grad.abs().sum() > 0 for g in gates)
    trainer.method.zero_grad()
    trainer.train()
    assert all(not torch.allclose(g, torch.ones_like(g)) for g in gates)
    assert trainer.steps_done == 3


def _matssl_views(pool, device, on_device):
    cfg = tiny_config("matssl", seed=3, options={"views_on_device": on_device})
    trainer = Pretrainer(pool, cfg)
    trainer.method.to_device(torch.device(device))
    return trainer.method.sample()


def test_matssl_views_drawn_on_the_device_equal_those_drawn_from_the_pool(pool):
    a1, a2 = _matssl_views(pool, "cpu", True)
    b1, b2 = _matssl_views(pool, "cpu", False)
    assert torch.equal(a1, b1) and torch.equal(a2, b2)
    assert not torch.equal(a1, a2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_matssl_views_are_drawn_on_the_gpu(pool):
    on_gpu = _matssl_views(pool, "cuda", True)
    on_cpu = _matssl_views(pool, "cuda", False)
    assert all(v.is_cuda for v in on_gpu) and not any(v.is_cuda for v in on_cpu)
    for g, c in zip(on_gpu, on_cpu):
        assert torch.allclose(g.cpu(), c, atol=5e-3)  # TF32 convolutions


def test_view_correspondence_maps_cells_to_the_same_source_pixels():
    size, stride = 64, 16
    source = torch.arange(size * size, dtype=torch.float32).view(1, 1, size, size)
    h = w = size // stride
    for k in range(4):
        for flip in (False, True):
            turned = flip_rot90(source, k, flip)
            cells_a = source.unfold(2, stride, stride).unfold(3, stride, stride).reshape(h * w, -1)
            cells_b = turned.unfold(2, stride, stride).unfold(3, stride, stride).reshape(h * w, -1)
            corr = view_correspondence(h, w, k, flip)
            for a in range(h * w):
                assert set(cells_a[a].tolist()) == set(cells_b[corr[a]].tolist())


def test_pscl_views_and_labels_line_up(pool, annotated):
    from napari_matseg.core.pretrain.views import GreyJitterConfig

    cfg = tiny_config("pscl", options={"jitter": GreyJitterConfig(probability=0.0,
                                                                  blur_probability=0.0)})
    trainer = Pretrainer(pool, cfg, labelled=annotated)
    views, labels, turns = trainer.method.sample()
    n_all = len(turns)
    assert views.shape[0] == 2 * n_all and labels.shape[0] == cfg.options.labelled_crops
    for i, (k, flip) in enumerate(turns):
        assert torch.equal(views[n_all + i], flip_rot90(views[i], k, flip))


def test_cell_purity_counts_painted_pixels_only():
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    labels[0, :4, :4] = 1
    labels[0, 0, 0] = 2
    labels[0, 4:, 4:6] = 2
    classes, purity, painted = cell_classes(labels, 4, 2)
    assert classes[0].tolist() == [[1, 0], [0, 2]]
    assert purity[0, 0, 0] == pytest.approx(15 / 16) and purity[0, 1, 1] == 1.0
    assert painted[0, 1, 1] == 8
    chosen = purest_cells(classes, purity, painted, 1)
    assert sorted(c for _, _, c in chosen) == [1, 2]


def test_greedy_match_never_reuses_a_cell():
    sim = torch.tensor([[0.9, 0.8, 0.1], [0.95, 0.2, 0.3]])
    match = greedy_match(sim)
    assert match.tolist() == [1, 0]


def _greedy_reference(sim):
    sim, match = sim.clone(), {}
    while len(match) < sim.shape[0]:
        r, c = divmod(int(sim.argmax()), sim.shape[1])
        match[r] = c
        sim[r, :], sim[:, c] = -np.inf, -np.inf
    return [match[r] for r in range(len(match))]


def test_greedy_match_of_a_batch_equals_crop_by_crop_matching():
    sim = torch.randn(5, 7, 30, generator=torch.Generator().manual_seed(1))
    batched = greedy_match(sim)
    assert batched.shape == (5, 7)
    for crop in range(5):
        assert batched[crop].tolist() == _greedy_reference(sim[crop])
        assert len(set(batched[crop].tolist())) == 7
    with pytest.raises(ValueError, match="distinct cells"):
        greedy_match(torch.zeros(2, 4, 3))


def test_pscl_matched_cells_carry_the_right_class_well_above_chance():
    from napari_matseg.core.encoders import GREY_MEAN, GREY_STD, create_encoder

    encoder, _ = create_encoder()
    encoder.eval()
    image, truth = voronoi_micrograph((192, 192), grains=14, phases=2, seed=3)
    strokes = simulate_scribbles(truth, config=ScribbleSimulation(stroke_length=24, stroke_width=3,
                                                                  erosion=2, painted_fraction=0.05))
    stride, level = 8, 2
    hits, total = 0, 0
    with torch.no_grad():
        def feats(img):
            x = (torch.from_numpy(img.astype(np.float32) / 255)[None, None] - GREY_MEAN) / GREY_STD
            return encoder(x)[level][0].flatten(1).t()

        anchor_feats = feats(image)
        classes, purity, painted = cell_classes(torch.from_numpy(strokes)[None], stride, 2)
        anchors = purest_cells(classes, purity, painted, 8)
        za = F.normalize(anchor_feats[[a[1] for a in anchors]], dim=1)
        for seed in (11, 12, 13):
            other, other_truth = voronoi_micrograph((192, 192), grains=14, phases=2, seed=seed)
            cand = F.normalize(feats(other), dim=1)
            match = greedy_match(za @ cand.t())
            cell_truth = F.avg_pool2d(torch.from_numpy(other_truth.astype(np.float32))[None, None],
                                      stride)[0, 0].flatten()
            matched_class = (cell_truth[match] > 0.5).long() + 1
            hits += int((matched_class == torch.tensor([a[2] for a in anchors])).sum())
            total += len(anchors)
    assert hits / total > 0.8  # chance is 0.5


def test_sms_tiles_cover_the_image_exactly_once():
    for h, w, tile in ((64, 64, 16), (100, 75, 16), (37, 50, 8)):
        index_map, tiles = tile_index_map(h, w, tile)
        counts = torch.bincount(index_map.flatten(), minlength=tiles)
        assert counts.sum() == h * w and (counts > 0).all()
        rows, cols = tile_edges(h, tile), tile_edges(w, tile)
        assert rows[0] == 0 and rows[-1] == h and cols[-1] == w
        sides = np.diff(rows).tolist() + np.diff(cols).tolist()
        assert min(sides) >= tile / 2 and max(sides) < 1.5 * tile
        for t in range(tiles):
            ys, xs = torch.nonzero(index_map == t, as_tuple=True)
            assert counts[t] == (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)  # a rectangle
    masks = random_tile_masks(3, 20, 0.5, np.random.default_rng(0))
    assert masks.sum(dim=1).tolist() == [10, 10, 10]


def test_sms_selected_tiles_have_a_higher_loss_than_random_ones(pool):
    rng = np.random.default_rng(0)
    image = np.full((128, 128), 0.5, np.float32)
    image[:, 64:] += 0.25 * rng.standard_normal((128, 64)).astype(np.float32)
    trainer = Pretrainer(MicrographPool.of_prepared([np.clip(image, 0, 1)], pool.preprocess),
                         tiny_config("sms"))
    method: SMS = trainer.method
    index_map, tiles = tile_index_map(128, 128, 16)
    x = method.pool.images[0]
    selected = select_hardest(method.score_tiles(x, index_map, tiles, 2), 0.5)[0]
    fresh = method.score_tiles(x, index_map, tiles, 2)[0]
    random_means = [fresh[random_tile_masks(1, tiles, 0.5, rng)[0]].mean() for _ in range(20)]
    assert fresh[selected].mean() > max(random_means)


def test_sms_learns_to_reconstruct(pool):
    cfg = tiny_config("sms", steps=25, lr=2e-3)
    trainer = Pretrainer(pool, cfg)
    trainer.train()
    losses = [v for _, v, _ in trainer.history]
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:3])


@pytest.mark.parametrize("method", ["matssl", "pscl", "sms"])
def test_every_method_makes_a_starting_model_for_finetuning(method, pool, annotated, tmp_path,
                                                             micrograph, scribbles):
    trainer = Pretrainer(pool, tiny_config(method), labelled=annotated if method == "pscl" else None)
    events = list(trainer.run())
    assert events[-1].kind == "done" and trainer.steps_done == 3
    path = trainer.to_bundle().save(tmp_path / f"{method}.matseg")
    bundle = load_bundle(path, expect="pretrained")
    assert bundle.provenance["pretraining_method"] == method and bundle.kind == "pretrained"
    with pytest.raises(BundleError, match="pretrained starting model"):
        load_bundle(path, expect="segmentation")
    encoder_state = {k: v.clone() for k, v in bundle.model.encoder.state_dict().items()}
    assert torch.equal(encoder_state["conv_stem.weight"],
                       trainer.model.encoder.state_dict()["conv_stem.weight"].cpu())
    config = FinetuneConfig(budget=Budget(2), batch_size=2, crop_size=64, device="cpu",
                            validation_fraction=0.0)
    tuner = Finetuner([AnnotatedImage(micrograph[0], scribbles, info_band=0)], config=config,
                      pretrained=bundle)
    assert tuner.model.config.num_classes == 3
    assert torch.equal(tuner.model.encoder.state_dict()["conv_stem.weight"],
                       encoder_state["conv_stem.weight"])
    tuner.train()
    assert tuner.provenance["pretraining_method"] == method
    assert tuner.provenance["pretrained_transfer"] == "encoder"
    assert torch.equal(bundle.model.encoder.state_dict()["conv_stem.weight"],
                       encoder_state["conv_stem.weight"])  # the pretrained bundle is not modified


def test_a_pretrained_start_hands_over_the_encoder_and_on_request_the_decoder(pool):
    from napari_matseg.core.finetune import start_from_pretrained

    bundle = Pretrainer(pool, tiny_config("sms")).to_bundle()
    fresh = start_from_pretrained(bundle, 4)
    kept = start_from_pretrained(bundle, 4, keep_decoder=True)
    for model in (fresh, kept):
        assert model.config.num_classes == 4 and model.head.out_channels == 4
        for k, v in bundle.model.encoder.state_dict().items():
            assert torch.equal(model.encoder.state_dict()[k], v), k
    ours = bundle.model.decoder.state_dict()
    assert all(torch.equal(kept.decoder.state_dict()[k], v) for k, v in ours.items())
    conv = [k for k in ours if k.endswith("weight") and ours[k].ndim == 4]
    assert not any(torch.equal(fresh.decoder.state_dict()[k], ours[k]) for k in conv)
    assert bundle.model.config.num_classes != 4  # the bundle itself is untouched
    acts = lambda m: {type(x) for x in m.decoder.modules() if isinstance(x, (torch.nn.ReLU, torch.nn.LeakyReLU))}
    assert bundle.model.config.decoder_activation == "relu" and acts(kept) == {torch.nn.ReLU}
    assert fresh.config.decoder_activation == "leaky_relu" and acts(fresh) == {torch.nn.LeakyReLU}


def test_pscl_without_scribbles_is_a_clear_error(pool):
    with pytest.raises(InputError, match="scribbles"):
        Pretrainer(pool, tiny_config("pscl"))


def test_unknown_method_and_bad_crop_are_clear_errors(pool):
    with pytest.raises(InputError, match="unknown pretraining method 'byol'; choose one of matssl, pscl, sms"):
        PretrainConfig(method="byol")
    with pytest.raises(InputError, match="multiple of 32"):
        PretrainConfig(crop_size=100, init="random")
    with pytest.raises(InputError, match="takes SMSConfig options"):
        PretrainConfig(method="sms", options=tiny_config("matssl").options)


def test_resume_continues_from_the_checkpoint(pool, tmp_path):
    ckpt = tmp_path / "run.ckpt"
    first = Pretrainer(pool, tiny_config("sms"), checkpoint=ckpt)
    first.train()
    saved = {k: v.clone() for k, v in first.model.state_dict().items()}
    assert ckpt.is_file()
    second = Pretrainer(pool, tiny_config("sms", steps=5), checkpoint=ckpt, resume=True)
    run = second.run()
    message = next(run)
    assert message.kind == "message" and "resumed" in message.message and message.step == 3
    assert all(torch.equal(saved[k], v) for k, v in second.model.state_dict().items())
    steps = [e.step for e in run if e.kind == "step"]
    assert steps == [4, 5]


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04pickled"])
def test_resuming_from_a_broken_checkpoint_is_a_clear_error(pool, tmp_path, content):
    ckpt = tmp_path / "run.ckpt"
    ckpt.write_bytes(content)
    trainer = Pretrainer(pool, tiny_config("sms"), checkpoint=ckpt, resume=True)
    with pytest.raises(InputError, match="not a usable pretraining checkpoint"):
        next(trainer.run())


def test_checkpoints_are_safetensors_not_pickles(pool, tmp_path):
    from safetensors import safe_open

    ckpt = tmp_path / "run.ckpt"
    Pretrainer(pool, tiny_config("matssl"), checkpoint=ckpt).train()
    with safe_open(str(ckpt), framework="pt") as f:
        assert f.metadata()["format"] == "napari-matseg-pretrain-checkpoint"
    other = Pretrainer(pool, tiny_config("sms"), checkpoint=ckpt, resume=True)
    with pytest.raises(InputError, match="is a matssl checkpoint, not sms"):
        next(other.run())


def test_finetuner_refuses_a_segmentation_bundle_as_pretrained(trained):
    from napari_matseg.core.finetune import start_from_pretrained

    with pytest.raises(InputError, match="not a pretrained start"):
        start_from_pretrained(trained.to_bundle(), 3)
