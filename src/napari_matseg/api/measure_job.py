"""Measuring as a job: label maps (predicted phases, files or layers) to the numbers of a lab
report: phase fractions with a 95 % confidence interval over the batch, ASTM E112 grain size
(counted on the grain-boundary class thinned to a closed network, unless the raw mask is asked
for), particle statistics; written as CSV files and plots when asked. When the labels come from
a model whose self-check flags a class, every number resting on that class says so."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np

from ..core.atomic import atomic_write
from ..core.bundle import default_class_names
from ..core.calibration import Calibration, class_names_in, read_calibration
from ..core.checks import check_int
from ..core.errors import InputError
from ..core.imageio import label_array, read_labels
from ..core.measure import (DOUBTFUL, BoundaryNetworkConfig, GrainSize, ParticleStatistics, SelfCheckDoubts,
                            area_fractions, grain_size, particle_statistics, self_check_doubts,
                            summarise_fractions, wide_lines_doubt)
from ..core.preprocess import check_pixel_size
from ..plots import report_figures
from .events import EventKind, JobEvent
from .job import Job
from .outputs import check_writable_folder, class_file_stems
from .tables import write_csv

MEASUREMENTS_CSV = "measurements.csv"
GRAIN_SIZE = "grain size"
BOUNDARY_RULE = "grain boundaries counted on"
CHECK_SUFFIX = " self-check"


@dataclass
class LabelSource:
    """A label map to measure (classes 1..K, 0 unclassified): in memory or a file; its pixel size
    with where it came from; ``content_rows`` keeps an information band out; ``diagnosis`` is the
    self-check of the model that predicted it (``bundle.provenance["diagnosis"]``), if any."""

    name: str
    data: np.ndarray | None = None
    path: Path | None = None
    calibration: Calibration | None = None
    content_rows: int | None = None
    diagnosis: dict | None = None

    def load(self, num_classes: int | None) -> np.ndarray:
        if self.data is not None:
            return label_array(self.data, num_classes, f"the labels of {self.name}")
        return read_labels(self.path, num_classes)


def resolve_class(spec, class_names: list[str], what: str) -> int:
    """Return the class number (1..K) that ``spec`` names (a class name or a number)."""
    if isinstance(spec, bool):
        raise InputError(f"{what}: give a class name or number, not {spec!r}")
    if isinstance(spec, (int, np.integer)) or (isinstance(spec, str) and spec.strip().isascii()
                                               and spec.strip().isdigit()):
        number = int(spec)
        if not 1 <= number <= len(class_names):
            raise InputError(f"{what}: no class {number} (classes 1..{len(class_names)}: "
                             f"{', '.join(class_names)})")
        return number
    if spec in class_names:
        return class_names.index(spec) + 1
    raise InputError(f"{what}: no class {spec!r} (classes: {', '.join(class_names)})")


@dataclass(frozen=True)
class MeasureOptions:
    """What to measure besides phase fractions: ``grain_boundaries`` (the class, by name or
    number, whose regions separate the grains) and ``particles`` (classes whose regions are
    particles); ``pixel_size`` (µm) overrides the files' own; test ``lines`` per direction for
    the intercepts, and the smallest grain and particle (pixels) counted. Grains are counted on
    the boundary class thinned to a closed network by ``boundary_network``'s rule (None: on the
    raw mask); ``keep_networks`` keeps each image's network in its :class:`GrainSize`
    (``boundaries``), for showing it."""

    grain_boundaries: str | int | None = None
    particles: tuple = ()
    pixel_size: float | None = None
    lines: int = 20
    min_grain_pixels: int = 10
    min_particle_area: int = 4
    boundary_network: BoundaryNetworkConfig | None = BoundaryNetworkConfig()
    keep_networks: bool = False

    def __post_init__(self):
        check_pixel_size(self.pixel_size)
        check_int("the number of test lines", self.lines, 1, 1000)
        check_int("the smallest grain", self.min_grain_pixels, 1)
        check_int("the smallest particle", self.min_particle_area, 1)
        if self.boundary_network is not None and not isinstance(self.boundary_network,
                                                                BoundaryNetworkConfig):
            raise InputError("the boundary network must be a BoundaryNetworkConfig or None, "
                             f"got {self.boundary_network!r}")
        object.__setattr__(self, "particles", tuple(self.particles))


@dataclass
class ImageMeasurements:
    """What one image gave: fractions, and grain size and particle statistics when asked;
    ``doubts`` maps a measurement ('<class> area %', 'grain size', '<class> particles') to the
    self-check's doubt about the class it rests on."""

    name: str
    source: str
    pixel_size: float | None
    scale_source: str
    fractions: np.ndarray
    grains: GrainSize | None = None
    particles: dict[str, ParticleStatistics] = field(default_factory=dict)
    doubts: dict[str, str] = field(default_factory=dict)


@dataclass
class MeasureReport:
    """The batch: per-image measurements, the rows of ``measurements.csv`` (one per image and a
    summary row), the per-class particle rows, the files written."""

    class_names: list[str]
    class_colours: list[str] | None
    images: list[ImageMeasurements] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    particle_rows: dict[str, list[dict]] = field(default_factory=dict)
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def fraction_summary(self):
        return summarise_fractions([m.fractions for m in self.images])

    def doubts(self) -> dict[str, str]:
        """Return, per measurement, the self-check's doubts over the images (empty when the
        labels did not come from a model, or its self-check flags none of their classes); more
        than three notes that differ only in their numbers are given once, with how many more
        images had one."""
        notes: dict[str, dict[str, list[str]]] = {}
        for m in self.images:
            for what, note in m.doubts.items():
                note = note.removeprefix(DOUBTFUL)
                notes.setdefault(what, {}).setdefault(re.sub(r"\d+", "#", note), []).append(note)
        return {what: DOUBTFUL + " | ".join(_alike(group) for group in kinds.values())
                for what, kinds in notes.items()}

    @property
    def particle_stems(self) -> dict[str, str]:
        """Return the file stem of each particle class (:func:`class_file_stems`), the one rule
        for its CSV and its plot: 'M/A' gives ``particles_M_A.csv`` and ``particles_M_A_ecd.png``."""
        classes = list(self.particle_rows)
        return dict(zip(classes, class_file_stems(classes)))


def _alike(notes: list[str], listed: int = 3) -> str:
    """Return the notes of one kind (alike but for their numbers), one per image: each distinct
    note when there are at most ``listed``, else the first and how many more images had one."""
    distinct = list(dict.fromkeys(notes))
    if len(distinct) <= listed:
        return " | ".join(distinct)
    return f"{distinct[0]} (and {len(notes) - 1} more images alike)"


def report_summary(report: MeasureReport) -> list[str]:
    """Return the report's summary in lines, for the dock and the command line: each class's area
    % ± 95 %, the mean grain size, and beside each number the self-check's doubt, if any."""
    if not report.rows:
        return []
    summary, doubts = report.rows[-1], report.doubts()
    parts = []
    for n in report.class_names:
        ci = summary[f"{n} area % ±95%"]
        parts.append(f"{n} {summary[f'{n} area %']:.2f}" + (f" ± {ci:.2f}" if ci != "" else "")
                     + " %" + (" (doubtful, see below)" if f"{n} area %" in doubts else ""))
    lines = [f"measured {len(report.images)} image(s): " + "; ".join(parts)]
    if "astm_g_planimetric" in summary:
        lines.append(f"ASTM E112 grain size G {summary['astm_g_planimetric']} (planimetric), "
                     f"{summary['astm_g_intercept']} (intercept), on the {summary[BOUNDARY_RULE]}"
                     + (f"; {doubts[GRAIN_SIZE]}" if GRAIN_SIZE in doubts else ""))
    lines += [f"{what}: {note}" for what, note in doubts.items() if what != GRAIN_SIZE]
    return lines


def _round(value, digits=4):
    return "" if value is None or (isinstance(value, float) and not np.isfinite(value)) else round(float(value), digits)


def image_row(m: ImageMeasurements, names: list[str], particle_classes: list[str],
              checked: set[str] = frozenset()) -> dict:
    """Return the ``measurements.csv`` row of one image; each measurement in ``checked`` gets a
    '<measurement> self-check' column beside its numbers (empty where the self-check has no
    doubt about this image's class)."""
    row = {"image": m.name, "source": m.source, "pixel size µm": _round(m.pixel_size, 6),
           "scale source": m.scale_source}
    for n, f in zip(names, m.fractions):
        row[f"{n} area %"] = round(100 * float(f), 3)
        if f"{n} area %" in checked:
            row[f"{n} area %{CHECK_SUFFIX}"] = m.doubts.get(f"{n} area %", "")
    if m.grains is not None:
        g = m.grains
        row.update({"grains": g.grains, "boundary width px": _round(g.line_width_px, 1),
                    "grains_per_mm2": _round(g.grains_per_mm2, 2),
                    "astm_g_planimetric": _round(g.astm_g_planimetric, 2),
                    "mean_intercept_um": _round(g.mean_intercept_um),
                    "astm_g_intercept": _round(g.astm_g_intercept, 2), BOUNDARY_RULE: g.rule})
        if GRAIN_SIZE in checked:
            row[GRAIN_SIZE + CHECK_SUFFIX] = m.doubts.get(GRAIN_SIZE, "")
    for name in particle_classes:
        p = m.particles[name]
        row.update({f"{name} particles": p.whole + 0.5 * p.at_edge,
                    f"{name} per mm²": _round(p.per_mm2, 2),
                    f"{name} mean ecd ({p.unit})": _round(p.mean_ecd),
                    f"{name} median ecd ({p.unit})": _round(p.median_ecd),
                    f"{name} mean aspect ratio": _round(p.mean_aspect_ratio, 3),
                    f"{name} mean nearest neighbour ({p.unit})": _round(p.mean_nearest_neighbour)})
        if f"{name} particles" in checked:
            row[f"{name} particles{CHECK_SUFFIX}"] = m.doubts.get(f"{name} particles", "")
    return row


def summary_row(report: MeasureReport) -> dict:
    """Return the summary row: means over the images, and each class's 95 % confidence
    half-width of its area %."""
    rows = report.rows
    n = len(report.images)
    summary = report.fraction_summary()
    row = {"image": f"summary ({n} images)", "source": "", "pixel size µm": "", "scale source": ""}
    doubts = report.doubts()
    for key in [k for k in rows[0] if k not in row]:
        if key == BOUNDARY_RULE:
            row[key] = " | ".join(dict.fromkeys(r[key] for r in rows))
        elif key.endswith(CHECK_SUFFIX):
            row[key] = doubts.get(key[:-len(CHECK_SUFFIX)], "")
        else:
            values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
            row[key] = round(float(np.mean(values)), 4) if values else ""
    for name, ci in zip(report.class_names, summary.ci95):
        row[f"{name} area % ±95%"] = _round(100 * ci, 3)
    return row


def painted_width(diagnosis, cls: int, pixel_size: float | None) -> float | None:
    """Return how wide class ``cls`` was painted according to a model's self-check, in pixels
    of an image of ``pixel_size`` µm (the training pixels when either pixel size is unknown);
    None when the self-check does not say, or says something that is not a width."""
    if not isinstance(diagnosis, Mapping):
        return None
    widths = diagnosis.get("stroke_width_px")
    if not isinstance(widths, Mapping):
        return None
    try:
        width = float(widths.get(str(cls), widths.get(cls)))
    except (TypeError, ValueError):
        return None
    if not math.isfinite(width) or width <= 0:
        return None
    trained = diagnosis.get("stroke_pixel_size")
    if isinstance(trained, (int, float)) and trained > 0 and pixel_size:
        width *= trained / pixel_size
    return width


class MeasureJob(Job):
    """Measure ``sources`` (see :func:`napari_matseg.api.measure`)."""

    what = "measurement"

    def __init__(self, sources: list[LabelSource], class_names: list[str],
                 class_colours: list[str] | None, options: MeasureOptions,
                 output: Path | None, overwrite: bool):
        super().__init__()
        self.sources = sources
        self.options = options
        self.class_names = class_names
        self.class_colours = class_colours
        self.boundary = (None if options.grain_boundaries is None else
                         resolve_class(options.grain_boundaries, class_names, "--grain-boundaries"))
        self.particle_classes = [class_names[resolve_class(c, class_names, "--particles") - 1]
                                 for c in options.particles]
        self.notes = [self._notes(self_check_doubts(s.diagnosis, class_names)) for s in sources]
        self.checked = {what for notes in self.notes for what in notes}
        self.output = output
        if output is not None:
            check_report_folder(output, overwrite)

    def _notes(self, doubts: SelfCheckDoubts) -> dict[str, str]:
        """Return the self-check's note on each measurement of an image that rests on a class
        it doubts: a class's area %, the grain size (its boundary class), a class's particles."""
        if not doubts:
            return {}
        notes = {f"{n} area %": doubts.about([k]) for k, n in enumerate(self.class_names, 1)}
        if self.boundary is not None:
            notes[GRAIN_SIZE] = doubts.about([self.boundary])
        for name in self.particle_classes:
            notes[f"{name} particles"] = doubts.about([self.class_names.index(name) + 1])
        return {what: note for what, note in notes.items() if note}

    def _with_width_doubt(self, notes: dict[str, str], grains: GrainSize | None,
                          diagnosis, pixel_size: float | None) -> dict[str, str]:
        """Return an image's notes with its grain size marked doubtful when its boundary class
        came out much wider than the model's strokes of it were painted
        (:func:`~napari_matseg.core.measure.wide_lines_doubt`)."""
        doubt = (wide_lines_doubt(grains, painted_width(diagnosis, self.boundary, pixel_size))
                 if grains is not None else "")
        if not doubt:
            return notes
        earlier = notes.get(GRAIN_SIZE)
        return {**notes, GRAIN_SIZE: f"{earlier}; {doubt}" if earlier else DOUBTFUL + doubt}

    def _run(self) -> Iterator[JobEvent]:
        report = MeasureReport(list(self.class_names), self.class_colours)
        self.result = report
        k, n = len(self.class_names), len(self.sources)
        yield JobEvent(EventKind.STARTED, message=f"measuring {n} label image(s)")
        for i, source in enumerate(self.sources):
            if self.stopping:
                break
            try:
                m = self._measure(source, k)
                m.doubts = self._with_width_doubt(self.notes[i], m.grains, source.diagnosis,
                                                  m.pixel_size)
            except InputError as exc:
                report.failed.append((source.name, str(exc)))
                yield JobEvent(EventKind.RESULT, (i + 1) / n, name=source.name, error=str(exc),
                               message=f"skipped {source.name}: {exc}")
                continue
            report.images.append(m)
            for name in self.particle_classes:
                report.particle_rows.setdefault(name, []).extend(
                    {"image": m.name, **p} for p in m.particles[name].particles)
            yield JobEvent(EventKind.RESULT, (i + 1) / n, name=source.name, result=m,
                           message=f"measured {source.name} ({i + 1} of {n})")
        checked = self.checked | {what for m in report.images for what in m.doubts}
        report.rows = [image_row(m, self.class_names, self.particle_classes, checked)
                       for m in report.images]
        if report.rows:
            report.rows.append(summary_row(report))
            if self.output is not None:
                report.written += write_report(report, self.output)
        warnings = [f"{n}: {e}" for n, e in report.failed]
        if report.doubts():
            warnings.append("the self-check of the model that predicted these labels doubts "
                            "the numbers marked doubtful")
        yield JobEvent(EventKind.DONE, 1.0, result=report,
                       message="\n".join(report_summary(report)
                                         or [f"{len(report.images)} image(s) measured"])
                               + (f"\n{len(report.failed)} skipped" if report.failed else ""),
                       warnings=tuple(warnings))

    def _measure(self, source: LabelSource, k: int) -> ImageMeasurements:
        labels = source.load(k)
        if source.content_rows is None:  # a predicted map: the information band is all 0
            classified = np.flatnonzero(labels.any(axis=1))
            source.content_rows = int(classified[-1]) + 1 if classified.size else labels.shape[0]
        calibration = (Calibration(self.options.pixel_size, "given (--pixel-size)")
                       if self.options.pixel_size else source.calibration)
        px = calibration.pixel_size if calibration else None
        m = ImageMeasurements(source.name, str(source.path or ""), px,
                              calibration.source if calibration else "none (lengths in pixels)",
                              area_fractions(labels, k, source.content_rows))
        if self.boundary is not None:
            m.grains = grain_size(labels, self.boundary, px, source.content_rows,
                                  self.options.lines, self.options.min_grain_pixels,
                                  self.options.boundary_network)
            if not self.options.keep_networks:
                m.grains = replace(m.grains, boundaries=None)
        for name in self.particle_classes:
            m.particles[name] = particle_statistics(labels, self.class_names.index(name) + 1, px,
                                                    source.content_rows,
                                                    self.options.min_particle_area)
        return m



def check_report_folder(folder: Path, overwrite: bool) -> None:
    """Check, before any work, that a report can be written to ``folder``: writable, and no
    earlier ``measurements.csv`` there unless ``overwrite``."""
    check_writable_folder(folder)
    target = folder / MEASUREMENTS_CSV
    if target.exists() and not overwrite:
        raise InputError(f"{target} already exists (an earlier run?): choose another output "
                         "folder, or allow replacing it (--overwrite)")


def write_report(report: MeasureReport, folder: Path) -> list[Path]:
    """Write ``report`` into ``folder``: ``measurements.csv``, a ``particles_<class>.csv`` per
    particle class with particles, and the plots (PNG, SVG); return the paths written."""
    folder = Path(folder)
    written = [write_csv(folder / MEASUREMENTS_CSV, report.rows)]
    for name, stem in report.particle_stems.items():
        rows = report.particle_rows[name]
        if rows:
            written.append(write_csv(folder / f"particles_{stem}.csv", rows))
    for stem, figure in report_figures(report).items():
        for suffix in ("png", "svg"):
            written.append(atomic_write(folder / f"{stem}.{suffix}",
                                        lambda tmp, f=figure, s=suffix: f.savefig(tmp, format=s)))
    return written


def as_label_sources(items) -> list[LabelSource]:
    """Return ``items`` (LabelSource objects, paths, or (name, array) pairs) as label sources;
    a file's own pixel size (see :mod:`~napari_matseg.core.calibration`) is read with it."""
    sources = []
    for item in items:
        if isinstance(item, LabelSource):
            sources.append(item)
        elif isinstance(item, (str, Path)):
            path = Path(item)
            sources.append(LabelSource(path.name, path=path, calibration=read_calibration(path)))
        elif isinstance(item, tuple) and len(item) == 2:
            sources.append(LabelSource(str(item[0]), data=np.asarray(item[1])))
        else:
            raise InputError(f"cannot measure {type(item).__name__}: give label-image paths, "
                             "(name, array) pairs or LabelSource objects")
    return sources


def measure(labels: Sequence, class_names: Sequence[str] | None = None,
            options: MeasureOptions | None = None, output: str | Path | None = None,
            overwrite: bool = False, class_colours: Sequence[str] | None = None,
            diagnosis: dict | None = None) -> MeasureJob:
    """Return a job that measures label maps (classes 1..K): phase fractions with a 95 %
    confidence interval over the batch, and with ``options`` the ASTM E112 grain size and
    particle statistics. Class names come from ``class_names``, else from the first label file
    napari-matseg wrote, else 'class 1' ... With ``output``, writes ``measurements.csv`` (a row
    per image and a summary row), ``particles_<class>.csv`` and plots (PNG and SVG) there; the
    folder is checked here, before any work. ``diagnosis`` is the self-check of the model that
    predicted the labels (``bundle.provenance["diagnosis"]``; a source's own comes first): a
    number resting on a class it flags is marked doubtful, with the reason, beside it."""
    sources = as_label_sources(labels)
    if not sources:
        raise InputError("no label images to measure")
    if diagnosis is not None:
        sources = [s if s.diagnosis is not None else replace(s, diagnosis=diagnosis)
                   for s in sources]
    names = list(class_names or [])
    if not names:
        stored = next((class_names_in(s.path) for s in sources if s.path is not None), None)
        if stored:
            names = stored
        else:
            names = default_class_names(max(int(np.max(sources[0].load(None))), 2))
    return MeasureJob(sources, names, list(class_colours) if class_colours else None,
                      options or MeasureOptions(), Path(output) if output is not None else None,
                      overwrite)
