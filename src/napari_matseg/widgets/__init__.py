"""napari dock widgets. Thin: every action is one call into :mod:`napari_matseg.api`."""

import sys


def _keep_triton_out_of_a_gl_process() -> None:
    """Mark triton unavailable in the napari process where CUDA is absent, for the process's
    lifetime.

    Triton bundles its own LLVM; imported after Mesa's software OpenGL (llvmpipe, which napari
    draws with where there is no GPU driver, as under Xvfb) it kills the process with a
    segmentation fault (reproduced with torch 2.14.1: a napari viewer shown, then ``import
    triton``). ``import timm`` imports torchvision.ops, which imports torch._dynamo, which imports
    triton whenever it is installed (torch's CUDA wheels install it), and napari imports these
    docks after its OpenGL is up. The mark is set before anything imports timm and is never
    lifted, since later torch code may import triton again. Triton only compiles GPU kernels:
    without CUDA nothing is lost (the widgets import about 0.17 s faster). With CUDA it is left
    alone, for torch to use."""
    if "triton" in sys.modules:
        return
    import torch

    if not torch.cuda.is_available():
        sys.modules["triton"] = None


_keep_triton_out_of_a_gl_process()

from .measure_widget import MeasureWidget  # noqa: E402
from .predict_widget import PredictInspectWidget  # noqa: E402
from .pretrain_widget import PretrainWidget  # noqa: E402
from .train_widget import AnnotateTrainWidget  # noqa: E402

__all__ = ["AnnotateTrainWidget", "MeasureWidget", "PredictInspectWidget", "PretrainWidget"]
