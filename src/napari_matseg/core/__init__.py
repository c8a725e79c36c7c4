"""The headless engine of napari-matseg: no Qt, no napari, just numpy and torch.

Most callers want :mod:`napari_matseg.api`, which runs jobs (fine-tune, predict, pretrain) with
one set of decisions for the widgets, the command line and scripts. The engine underneath::

    from napari_matseg.core import AnnotatedImage, Finetuner, read_image, read_labels
    tuner = Finetuner([AnnotatedImage(image, strokes)])   # strokes: 0 unpainted, 1..K classes
    for event in tuner.run():                              # or tuner.train()
        print(event.step, event.loss)
    bundle = tuner.to_bundle(["matrix", "austenite"])
    bundle.save("steel.matseg")
    prediction = bundle.predict(image)
"""

from .budget import Budget
from .bundle import ModelBundle, load_bundle, read_metadata
from .cleanup import parse_min_area, remove_small_regions
from .errors import BundleError, InputError, MatsegError
from .finetune import AnnotatedImage, FinetuneConfig, Finetuner, TrainingEvent, UnlabeledImage
from .imageio import list_images, read_image, read_labels, write_labels
from .infoband import detect_info_band
from .metrics import confusion_matrix, iou_per_class, mean_iou, phase_fractions, score
from .model import ModelConfig, SegmentationModel, build_model
from .predict import Prediction, PredictConfig, predict_image
from .preprocess import PreprocessConfig, prepare_image

__all__ = [
    "AnnotatedImage", "Budget", "BundleError", "FinetuneConfig", "Finetuner", "InputError",
    "MatsegError", "ModelBundle", "ModelConfig", "Prediction", "PredictConfig", "PreprocessConfig",
    "SegmentationModel", "TrainingEvent", "build_model", "confusion_matrix", "detect_info_band",
    "iou_per_class", "list_images", "load_bundle", "mean_iou", "parse_min_area", "phase_fractions",
    "predict_image", "prepare_image", "read_image", "read_labels", "read_metadata",
    "remove_small_regions", "score", "UnlabeledImage", "write_labels",
]
