"""A pretraining recipe small enough for unit tests (shared by test_pretrain and test_cuda)."""

from napari_matseg.core.pretrain import PretrainConfig


def tiny_config(method, **overrides):
    """Return a 3-step, 2-crop, 64-px :class:`PretrainConfig` on the CPU; ``overrides`` replace
    any of those fields."""
    options = dict(method=method, max_steps=3, max_seconds=None, batch_size=2, crop_size=64,
                   device="cpu", info_band=0, init="random")
    cfg = PretrainConfig(**{**options, **overrides})
    cfg.matssl.region = 96
    cfg.pscl.labelled_crops = 1
    cfg.sms.partitions = 2
    cfg.sms.score_repeats = 1
    return cfg
