"""Plots of a measurement report (matplotlib figures, no pyplot, no Qt): the phase fractions with
their 95 % confidence intervals, particle-size histograms, and the grain intercept histogram.
The Measure dock shows them; :func:`napari_matseg.api.write_report` saves them as PNG and SVG.
File names come from the report (``report.particle_stems``): this module imports nothing of the
API."""

from __future__ import annotations

import numpy as np


def _figure(width: float = 5.0, height: float = 3.2):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return figure, figure.add_subplot()


def fraction_figure(report):
    """Return a bar chart of each class's mean area % with its 95 % confidence interval."""
    summary = report.fraction_summary()
    figure, ax = _figure()
    names = report.class_names
    colours = report.class_colours or None
    errors = None if summary.n < 2 else 100 * summary.ci95
    ax.bar(range(len(names)), 100 * summary.mean, yerr=errors, capsize=4, color=colours,
           edgecolor="black", linewidth=0.5)
    ax.set_xticks(range(len(names)), names, rotation=20 if len(names) > 4 else 0)
    ax.set_ylabel("area %")
    ax.set_title(f"Phase fractions, {summary.n} image(s)"
                 + (", 95 % confidence" if summary.n >= 2 else ""))
    return figure


def _histogram(values: np.ndarray, colour: str, xlabel: str, ylabel: str, title: str):
    figure, ax = _figure()
    if len(values):
        ax.hist(values, bins=min(40, max(5, len(values) // 5)), color=colour, edgecolor="black",
                linewidth=0.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return figure


def particle_figure(report, name: str):
    """Return the histogram of the equivalent circle diameters of whole particles of ``name``."""
    rows = [r for r in report.particle_rows.get(name, []) if not r["at edge"]]
    key = next((k for k in (rows[0] if rows else {}) if k.startswith("ecd")), "ecd (px)")
    values = np.array([r[key] for r in rows], float)
    return _histogram(values, "#1f77b4", f"equivalent circle diameter {key[3:]}", "particles",
                      f"{name}: {len(values)} whole particles")


def intercept_figure(report):
    """Return the histogram of grain intercept lengths over the batch."""
    lengths = np.concatenate([m.grains.intercept_lengths for m in report.images if m.grains is not None]
                             or [np.zeros(0)])
    unit = "µm" if all(m.pixel_size for m in report.images) else "px"
    return _histogram(lengths, "#2ca02c", f"intercept length ({unit})", "intercepts",
                      f"Grain intercepts: {len(lengths)}")


def report_figures(report) -> dict:
    """Return the report's figures by file stem; each figure's label (``get_label()``) names it
    for a tab, with the class names as the user wrote them (a stem cannot hold 'M/A')."""
    figures = {"phase_fractions": fraction_figure(report)}
    figures["phase_fractions"].set_label("phase fractions")
    if any(m.grains is not None for m in report.images):
        figures["grain_intercepts"] = intercept_figure(report)
        figures["grain_intercepts"].set_label("grain intercepts")
    for name, stem in report.particle_stems.items():
        figure = figures[f"particles_{stem}_ecd"] = particle_figure(report, name)
        figure.set_label(f"{name} particles")
    return figures

