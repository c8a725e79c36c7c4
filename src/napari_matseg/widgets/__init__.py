"""napari dock widgets. Thin: every action is one call into :mod:`napari_matseg.core`."""

import sys


def _keep_triton_out_of_a_gl_process() -> None:
    """Triton bundles its own LLVM; imported after Mesa's software OpenGL (which napari loads
    on machines without a GPU driver) it crashes the process. timm imports torchvision, which
    imports torch._dynamo, which imports triton. The widgets never compile kernels, so where
    CUDA is absent triton is marked unavailable before anything asks for it."""
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
