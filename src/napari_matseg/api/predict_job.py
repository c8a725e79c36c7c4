"""Prediction as a job: a model applied to images (layers or files), each result reported as it
comes, written to a folder when asked, a bad file skipped and reported, never the whole run."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from ..core.atomic import atomic_write, is_disk_full
from ..core.boundary_lines import DEFAULT_WIDTH, MAX_PAINTED_WIDTH, BoundaryLinesConfig
from ..core.bundle import AS_TRAINED, ModelBundle, load_bundle
from ..core.checks import check_int
from ..core.cleanup import parse_min_area
from ..core.diagnosis import missing_classes
from ..core.errors import InputError, MatsegError
from ..core.guidance import regions_to_paint
from ..core.imageio import nonfinite_warning, read_image, to_grey, write_labels
from ..core.predict import Prediction, predict_image
from ..core.preprocess import check_pixel_size
from .events import EventKind, JobEvent
from .job import Job
from .measure_job import painted_width, resolve_class
from .outputs import OutputFolder, is_earlier_result, plan_outputs, write_failure
from .tables import PHASE_COLUMNS, GrowingCsv, phase_rows


@dataclass
class ImageSource:
    """An image to predict: pixels in memory (a layer) or a file, with its name and, when known,
    its pixel size in µm and the strokes painted on it (kept out of the regions suggested for
    painting next)."""

    name: str
    data: np.ndarray | None = None
    path: Path | None = None
    pixel_size: float | None = None
    strokes: np.ndarray | None = None

    def load(self) -> np.ndarray:
        return to_grey(self.data) if self.data is not None else read_image(self.path)


def as_sources(items) -> list[ImageSource]:
    """Return ``items`` (ImageSource objects, paths, or (name, array-or-path) pairs) as
    :class:`ImageSource` objects."""
    sources = []
    for item in items:
        if isinstance(item, ImageSource):
            sources.append(item)
        elif isinstance(item, (str, Path)):
            sources.append(ImageSource(str(item), path=Path(item)))
        elif isinstance(item, tuple) and len(item) == 2:
            name, source = item
            if isinstance(source, (str, Path)):
                sources.append(ImageSource(str(name), path=Path(source)))
            else:
                sources.append(ImageSource(str(name), data=np.asarray(source)))
        else:
            raise InputError(f"cannot predict {type(item).__name__}: give paths, arrays with "
                             "names, or ImageSource objects")
    return sources


@dataclass(frozen=True)
class PredictOptions:
    """How to predict: the four flips averaged (``tta``, on by default: on MetalDAM it added
    0.011-0.013 test mIoU on all 24 runs of the stroke benchmark, for about 3.5 times the
    time), tile size, small regions removed
    (``min_region_area``: ``{class: pixels}`` or the command line's text form), the
    information band (as the model was trained, unless set), the pixel size (µm) of images that
    have none of their own; ``class_prior`` False turns the model's class prior off. With
    ``suggest`` > 0, each RESULT event's ``result`` lists that many regions worth painting next
    (:func:`~napari_matseg.core.guidance.regions_to_paint`), most worth first.
    ``boundary_lines`` (a class name or number) draws that class as a closed network of lines as
    wide as it was painted (:mod:`~napari_matseg.core.boundary_lines`): for grain boundaries
    whose grain size is measured."""

    tta: bool = True
    tile: int = 1024
    min_region_area: dict | str | None = None
    info_band: object = AS_TRAINED
    pixel_size: float | None = None
    class_prior: bool = True
    suggest: int = 0
    boundary_lines: str | int | None = None

    def __post_init__(self):
        check_pixel_size(self.pixel_size)
        check_int("the number of regions to suggest", self.suggest, 0, 100)


@dataclass
class PredictSummary:
    """What a prediction run did: the phase-fraction rows, the files written, the images
    skipped with the reason, the images left out when the run ended early (``stop_reason``
    'stopped' or 'disk full'), files of the output folder that were not read because they are
    results of an earlier run, and warnings about images that were segmented (pixels that are
    not numbers)."""

    rows: list[dict] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    csv: Path | None = None
    predicted: int = 0
    left_out: list[str] = field(default_factory=list)
    stop_reason: str | None = None
    excluded: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every image was segmented."""
        return not self.failed and not self.left_out


class PredictJob(Job):
    """Predict ``sources`` with a bundle (see :func:`napari_matseg.api.predict`)."""

    what = "prediction"

    def __init__(self, bundle: ModelBundle, sources: list[ImageSource], options: PredictOptions,
                 device: str | torch.device = "auto", output: OutputFolder | None = None,
                 keep_probabilities: bool = False):
        super().__init__(device)
        self.bundle = bundle
        self.excluded = [s.path for s in sources
                         if output is not None and s.path is not None and is_earlier_result(s.path, output)]
        self.sources = [s for s in sources if s.path not in self.excluded] if self.excluded else sources
        if not self.sources:
            raise InputError(f"no images to predict: {', '.join(p.name for p in self.excluded[:3])}"
                             f"{' …' if len(self.excluded) > 3 else ''} in {output.path} are results "
                             "of an earlier run, not micrographs")
        self.options = options
        self.output = output
        min_area = options.min_region_area
        if isinstance(min_area, str):
            min_area = parse_min_area(min_area, bundle.class_names) or None
        self.config = bundle.predict_config(tta=options.tta, tile=options.tile,
                                            keep_probabilities=keep_probabilities,
                                            min_region_area=min_area,
                                            **({} if options.class_prior else {"class_prior": None}))
        self.preprocess = bundle.preprocess_for(options.info_band)
        self.boundary_class = None if options.boundary_lines is None else resolve_class(
            options.boundary_lines, bundle.class_names, "the class drawn as boundary lines")
        self.plans = plan_outputs(output, [s.name for s in self.sources]) if output is not None else None

    def _model(self):
        """Return the bundle's model on the job's device: the registered model itself when it is
        already there (prediction only reads it), else a copy, so it is never moved under the
        feet of whoever else uses it."""
        model = self.bundle.model
        current = next(model.parameters()).device
        if current == self.device or (current.type == self.device.type == "cpu"):
            return model
        return copy.deepcopy(model).to(self.device)

    def _started(self) -> JobEvent:
        n = len(self.sources)
        text = f"predicting {n} image(s) on {self.device.type}"
        if self.excluded:
            shown = ", ".join(p.name for p in self.excluded[:3])
            text += (f"; {len(self.excluded)} file(s) of the output folder left out as results of "
                     f"an earlier run ({shown}{' …' if len(self.excluded) > 3 else ''})")
        return JobEvent(EventKind.STARTED, message=text)

    def _run(self) -> Iterator[JobEvent]:
        summary = PredictSummary(excluded=list(self.excluded))
        self.result = summary
        yield self._started()
        model = self._model()
        table = self._open_table()
        try:
            for i, source in enumerate(self.sources):
                if self.stopping or summary.stop_reason:
                    summary.stop_reason = summary.stop_reason or "stopped"
                    summary.left_out = [s.name for s in self.sources[i:]]
                    break
                yield self._predict_one(i, source, model, table, summary)
        finally:
            if table is not None:
                summary.csv = table.close()
                if summary.csv is not None:
                    summary.written.append(summary.csv)
        yield JobEvent(EventKind.DONE, 1.0, result=summary, reason=summary.stop_reason or "done",
                       message=self._done_text(summary),
                       warnings=tuple(f"{name}: {text}" for name, text in summary.failed)
                       + tuple(summary.warnings))

    def _open_table(self) -> GrowingCsv | None:
        """Return the phase-fraction CSV this run adds its rows to (None without an output)."""
        if self.output is None:
            return None
        try:
            return GrowingCsv(self.output.csv_path, PHASE_COLUMNS)
        except OSError as exc:
            raise MatsegError(f"{self.output.csv_path}: cannot be written "
                              f"({write_failure(exc, self.output.path)})") from exc

    def _predict_one(self, i: int, source: ImageSource, model, table, summary) -> JobEvent:
        """Predict one image and write its results (label files and CSV rows together, or
        neither); return its RESULT event."""
        n = len(self.sources)
        pixel_size = source.pixel_size or self.options.pixel_size
        written: list[Path] = []
        try:
            image = source.load()
            warning = nonfinite_warning(source.name, image)
            prediction = predict_image(model, image, self.preprocess, self.config_for(pixel_size),
                                       self.device, pixel_size=pixel_size)
            rows = phase_rows(Path(source.name).name if source.path else source.name,
                              prediction.labels, self.bundle.class_names,
                              str(source.path or ""), pixel_size)
            if self.plans is not None:
                self._write(self.plans[i], prediction, pixel_size, written)
                table.append(rows)
        except Exception as exc:  # one bad image never ends the run
            for path in written:
                path.unlink(missing_ok=True)
            text = self._failure(exc, summary)
            summary.failed.append((source.name, text))
            return JobEvent(EventKind.RESULT, (i + 1) / n, name=source.name, error=text,
                            message=f"skipped {source.name}: {text}")
        summary.written += written
        regions = None
        if self.options.suggest:
            painted = None if source.strokes is None else np.asarray(source.strokes) > 0
            regions = regions_to_paint(prediction.uncertainty, painted, prediction.content_rows,
                                       top=self.options.suggest)
        summary.predicted += 1
        summary.rows += rows
        lost = missing_classes(prediction.labels[:prediction.content_rows], self.bundle.class_prior,
                               self.bundle.class_names,
                               skip=(self.boundary_class,) if self.boundary_class else ())
        warnings = ((warning,) if warning else ()) + tuple(f"{source.name}: {text}" for text in lost)
        summary.warnings += warnings
        message = "; ".join([f"predicted {source.name} ({i + 1} of {n})",
                             *([warning] if warning else []), *lost])
        return JobEvent(EventKind.RESULT, (i + 1) / n, name=source.name, prediction=prediction,
                        result=regions, warnings=warnings, message=message)

    def config_for(self, pixel_size: float | None):
        """Return the prediction config for an image of ``pixel_size`` µm: with the boundary
        lines as wide as the class was painted (3 px when the model does not say, at most
        25 px)."""
        if self.boundary_class is None:
            return self.config
        width = painted_width(self.bundle.provenance.get("diagnosis"), self.boundary_class,
                              pixel_size) or DEFAULT_WIDTH
        return replace(self.config, boundary_lines=BoundaryLinesConfig(
            self.boundary_class, width=min(max(width, 1.0), MAX_PAINTED_WIDTH)))

    def _failure(self, exc: Exception, summary: PredictSummary) -> str:
        """Return why an image failed, in one sentence; a full disk ends the run."""
        if self.output is not None and is_disk_full(exc, self.output.path):
            summary.stop_reason = "disk full"
            return f"the disk is full: no room left in {self.output.path} for its results"
        return str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"

    @staticmethod
    def _done_text(summary: PredictSummary) -> str:
        text = f"{summary.predicted} image(s) segmented"
        if summary.failed:
            text += f", {len(summary.failed)} skipped"
        if summary.left_out:
            why = "the disk is full" if summary.stop_reason == "disk full" else "stopped"
            text += f"; {why}, {len(summary.left_out)} not segmented: " + ", ".join(summary.left_out)
        return text

    def _write(self, plan: dict[str, Path], prediction: Prediction, pixel_size: float | None,
               written: list[Path]) -> None:
        """Write an image's results, adding each file to ``written`` as it is."""
        out = self.output
        names, colours = self.bundle.class_names, self.bundle.class_colours
        written.append(write_labels(plan["labels"], prediction.labels, names, colours, pixel_size,
                                    plain=out.plain))
        if "uncertainty" in plan:
            import tifffile

            written.append(atomic_write(plan["uncertainty"],
                                        lambda tmp: tifffile.imwrite(tmp, prediction.uncertainty)))


def predict(model: ModelBundle | str | Path, images: Sequence, options: PredictOptions | None = None,
            device: str = "auto", output: OutputFolder | None = None,
            keep_probabilities: bool = False) -> PredictJob:
    """Return a job that segments ``images`` (paths, (name, array) pairs or
    :class:`ImageSource` objects) with ``model`` (a trained bundle or its path).

    With ``output`` it writes a label image per image (coloured, with the pixel size when known)
    and a ``phase_fractions.csv`` of this run's rows; the folder, and that nothing there would
    be replaced, are checked here, before any work. ``device="auto"`` picks CUDA, then MPS,
    then the CPU.
    """
    bundle = model if isinstance(model, ModelBundle) else load_bundle(model, expect="segmentation")
    if bundle.kind != "segmentation":
        raise InputError("this is a pretrained starting model: fine-tune it on your strokes first")
    sources = as_sources(images)
    if not sources:
        raise InputError("no images to predict")
    return PredictJob(bundle, sources, options or PredictOptions(), device,
                      output, keep_probabilities)
