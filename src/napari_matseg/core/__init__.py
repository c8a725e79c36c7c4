"""The headless engine of napari-matseg: no Qt, no napari, just numpy and torch.

Typical use::

    from napari_matseg.core import Finetuner, ModelBundle, predict_image, read_image
    tuner = Finetuner(image, scribbles)          # scribbles: 0 unpainted, 1..K classes
    for event in tuner.run():                    # or tuner.train()
        print(event.step, event.loss)
    bundle = tuner.to_bundle(["matrix", "austenite"])
    bundle.save("steel.matseg")
    prediction = predict_image(bundle.model, image, bundle.preprocess)
"""

from .bundle import ModelBundle, load_bundle, read_metadata
from .cleanup import parse_min_area, remove_small_regions
from .errors import BundleError, InputError, MatsegError
from .finetune import FinetuneConfig, Finetuner, TrainingEvent
from .imageio import list_images, read_image, read_labels, write_labels
from .infoband import detect_info_band
from .metrics import confusion_matrix, iou_per_class, mean_iou, phase_fractions, score
from .model import ModelConfig, SegmentationModel, build_model
from .predict import Prediction, PredictConfig, predict_image
from .preprocess import PreprocessConfig, prepare_image
from .simulate import ScribbleSimulation, simulate_scribbles

__all__ = [
    "BundleError", "FinetuneConfig", "Finetuner", "InputError", "MatsegError", "ModelBundle",
    "ModelConfig", "Prediction", "PredictConfig", "PreprocessConfig", "ScribbleSimulation",
    "SegmentationModel", "TrainingEvent", "build_model", "confusion_matrix", "detect_info_band",
    "iou_per_class", "list_images", "load_bundle", "mean_iou", "parse_min_area", "phase_fractions",
    "predict_image", "prepare_image", "read_image", "read_labels", "read_metadata",
    "remove_small_regions", "score", "simulate_scribbles", "write_labels",
]
