"""A pretraining recipe small enough for unit tests (shared by test_pretrain and test_cuda)."""

from dataclasses import replace

from napari_matseg.core.budget import Budget
from napari_matseg.core.pretrain import PretrainConfig, method_spec

TINY_OPTIONS = {"matssl": {"region": 96}, "pscl": {"labelled_crops": 1},
                "sms": {"partitions": 2, "score_repeats": 1}}


def tiny_config(method, steps=3, options=None, **overrides):
    """Return a ``steps``-step, 2-crop, 64-px :class:`PretrainConfig` on the CPU; ``overrides``
    replace any of its fields, ``options`` any of the method's options."""
    opts = replace(method_spec(method).options(), **{**TINY_OPTIONS[method], **(options or {})})
    fields = dict(method=method, budget=Budget(steps), batch_size=2, crop_size=64, device="cpu",
                  init="random", options=opts)
    return PretrainConfig(**{**fields, **overrides})
