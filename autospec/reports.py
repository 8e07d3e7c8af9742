"""What a finished run writes beside its record: the text summary of group findings and the figures."""
from __future__ import annotations

from pathlib import Path

from .config import GROUP_PANELS


def group_findings(rec, compare=None):
    """(Summary of the calibrated group tests, None) of a record, or (None, a line saying why there
    is none and what to do). Only calibrated tests are reported by default (per-sample Welch tests
    with BH-FDR within each map); the paper's uncalibrated tests stay available from
    ``autospec stats RECORD --tests paper``."""
    from . import stats

    if len(rec.groups) < 2 and rec.sample_groups is None:
        return None, "no group comparison: the record holds fewer than two groups"
    try:
        return stats.summarize(rec, groups=list(compare) if compare else None, tests="calibrated"), None
    except stats.StatsError as exc:
        return None, (f"no calibrated group test: {exc} (`autospec stats {rec.path or 'RECORD'} --tests paper` "
                      f"runs them)")


def write_summary(rec, path, config=None, result=None):
    """Write the group findings of a record (:func:`group_findings`) to ``path``; returns (path,
    text, Summary or None). With a RunResult, also sets its ``findings_note`` (why there is no Summary)."""
    meta = rec.metadata or {}
    lines = [f"AutoSpec run: {meta.get('experiment', '?')}"]
    if meta.get("panel_description"):
        lines.append(f"panel: {meta['panel_description']}")
    data = meta.get("data") or {}
    if data:
        lines.append(f"data: {data.get('name')} ({data.get('source')}), input {data.get('model_input_shape')}, "
                     f"groups {data.get('group_counts')}")
    lines.append(f"steps recorded: {len(rec)}; loss reduction: {meta.get('loss_reduction', '?')}")
    if result is not None:
        lines.append(f"final loss: {result.final_loss:.6g}"
                     + (f"; training accuracy: {result.accuracy:.3f}" if result.accuracy is not None else ""))
    compare = config.compare if config is not None else (meta.get("config") or {}).get("compare")
    summary, note = group_findings(rec, compare)
    lines += ["", note if summary is None else summary.to_text()]
    if result is not None:
        result.findings_note = note
    text = "\n".join(lines) + "\n"
    Path(path).write_text(text)
    return Path(path), text, summary


def write_figures(rec, folder, panel=None, compare=None, group_differences=None, quantities=("G",),
                  formats=("png", "pdf")):
    """Figures of one record in ``folder`` (each as PNG and PDF by default): a dashboard, the
    trajectories of each of ``quantities`` (whole batch; None = every recorded quantity) and, for
    group panels (G, H; or ``group_differences=True``), per-layer group-difference maps of G
    (calibrated tests) for the ``compare`` groups (default: all). Figures already in ``folder``
    (an earlier run's) are moved into a backup folder there. Returns the paths written."""
    from . import plot

    if group_differences is None:
        group_differences = panel in GROUP_PANELS
    report = plot.write_record_figures(rec, folder, quantities=quantities, groups=list(compare) if compare else None,
                                       group_differences=group_differences and len(rec.groups) >= 2,
                                       formats=tuple(formats), force=True)
    return report.written
