"""A live dashboard of the spectra while training: ``Introspector(model, live=True)``.

    spec = autospec.Introspector(model, live=True)    # or live=10: every 10 recorded steps
    for step in range(steps):
        ...
        with spec.step(groups=labels, loss=loss):
            loss.backward()
    spec.close()                                      # draws the last step too

The dashboard shows the loss, the top singular value sigma_1 and the effective rank (of the
values above the noise floor) of every recorded layer over the steps, each layer's latest
spectrum (values above the floor, the floor dashed), and, when the steps have groups, sigma_1 per
group of one layer over the steps and, when per-sample values are recorded, the latest
calibrated per-sample test between two groups (-log10 of its smallest FDR q-value).

Where it goes: in Jupyter (an IPython kernel), one output that is updated in place (one display,
not one per refresh). Elsewhere, a PNG rewritten atomically beside the record
(``<record stem>-live.png``) or, for an in-memory record, at ``live_path`` (default
``./autospec-live.png``). A file already at that path that this module did not write is never
overwritten: a numbered name is used instead, and said once.

How often (``live=``):

- ``True``: adaptive. The first recorded step is drawn at once; after that a refresh happens
  when at least ``(1 - f) / f`` times the last refresh's cost has passed since it ended
  (f = ``LIVE_FRACTION`` = 10 %), and at least ``LIVE_MIN_SECONDS`` apart. Refreshing then takes
  at most about f of the training's wall time, whatever a step costs: a fixed count of steps
  cannot promise that. Measured (``bench/live_cost.py``, a 2-core machine shared with other
  work): a refresh costs about 0.2 s of CPU (the first, which builds the figure, 0.4-0.8 s),
  while a recorded step of a small MLP costs 3-5 ms, so ``live=10`` would make training 7-11x
  slower; with ``live=True`` the steady-state share is f, plus a fixed cost of the first picture
  and the last one (drawn by ``close()``), which shows only in runs of a few seconds.
- ``N`` (an int >= 1): every N recorded steps (the 1st, N+1-th, 2N+1-th, ...), deterministic.

Either way ``close()`` (or ``refresh()``) draws the last recorded step if it is not drawn yet.
Each refresh updates the lines of one figure kept alive (set_data, relim), not a new figure.
Nothing here is imported until a live view (or the CLI's progress bar, for ``step_summary``) is
asked for; matplotlib loads on the first draw.
"""
from __future__ import annotations

import io
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .atomic import free_path, write_bytes_atomically
from .errors import AutoSpecError

__all__ = ["LiveError", "LiveView", "check_live", "live_target", "step_summary",
           "LIVE_FRACTION", "LIVE_MIN_SECONDS"]

#: With ``live=True``, refreshing takes at most about this fraction of the wall time.
LIVE_FRACTION = 0.10
#: With ``live=True``, refreshes are at least this many seconds apart.
LIVE_MIN_SECONDS = 0.5
#: At most this many layers get a line (evenly chosen when a model has more).
MAX_LAYERS = 8
#: The marker written into our PNGs: a file carrying it may be rewritten, any other is the user's.
MARK = "autospec live view"
DPI = 100

class LiveError(AutoSpecError, ValueError):
    """A bad ``live=`` or ``live_path=`` argument."""


def check_live(live):
    """``live`` as None (off), "auto" (True) or a positive int N; anything else is a LiveError."""
    if live is None or live is False:
        return None
    if live is True:
        return "auto"
    if isinstance(live, (int, np.integer)) and not isinstance(live, (bool, np.bool_)) and live >= 1:
        return int(live)
    raise LiveError(f"live must be False, True (adaptive) or a positive int N (redraw every N recorded steps), "
                    f"got {live!r}")


def live_target(record_path=None, live_path=None):
    """Where the PNG goes: ``live_path``, else ``<record stem>-live.png`` beside a file-backed
    record, else ``./autospec-live.png``."""
    if live_path is not None:
        try:
            path = Path(os.fspath(live_path))
        except TypeError:
            raise LiveError(f"live_path must be a path, got {type(live_path).__name__}") from None
        if path.suffix.lower() != ".png":
            raise LiveError(f"live_path must name a .png file, got {str(path)!r}")
        return path.absolute()
    if record_path is not None:
        record_path = Path(record_path)
        return record_path.with_name(f"{record_path.stem}-live.png").absolute()
    return Path("autospec-live.png").absolute()  # fixed now: a later chdir does not move it


def _batch_keys(spectra, quantity=None):
    """(quantity, the keys of its batch spectra: group and position None) of one step;
    ``quantity`` default: the main one recorded (G, else A, else D; None when none is)."""
    batch = [k for k in spectra if k[2] is None and k[3] is None]
    if quantity is None:
        quantities = {k[1] for k in batch}
        quantity = next((q for q in ("G", "A", "D") if q in quantities), None)
    return quantity, [k for k in batch if k[1] == quantity]


def step_summary(last, layer=None):
    """(layer, quantity, sigma_1, effective rank above the floor) of one layer of a recorded step
    (``Introspector.last_step``: NumPy spectra, float floors), for progress bars; quantity is G
    when recorded. ``layer``: default the last layer of the step (the model's output side).
    None when nothing fits."""
    if last is None:
        return None
    quantity, keys = _batch_keys(last.spectra)
    names = [k[0] for k in keys]
    if not names or (layer is not None and layer not in names):
        return None
    key = (layer if layer is not None else names[-1], quantity, None, None)
    s = np.asarray(last.spectra[key], dtype=np.float64)
    floor = float(last.floors.get(key, math.nan)) if last.floors else math.nan
    return (key[0], quantity, *_top_and_rank(s, floor))


def _top_and_rank(s, floor):
    """(sigma_1, effective rank above ``floor``) of a spectrum; NaN for an empty one."""
    from .stats import effective_rank

    if not s.size:
        return math.nan, math.nan
    return float(s[0]), float(effective_rank(s, floor=floor))


def _in_kernel():
    """True inside a running IPython kernel (Jupyter), where a display can be updated in place."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _display(png):
    """Show PNG bytes as a new output with a display id; returns the handle (``.update``)."""
    from IPython.display import Image, display

    return display(Image(data=png, format="png"), display_id=True)


def _update(handle, png):
    from IPython.display import Image

    handle.update(Image(data=png, format="png"))


def _is_ours(path):
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return head.startswith(b"\x89PNG") and MARK.encode() in head


class LiveView:
    """The live dashboard of one Introspector (made by it for ``live=``; see the module's doc).

    ``observe`` takes each recorded step (cheap: a few numbers per layer are kept); a refresh
    redraws the kept figure. ``refreshes``: how many refreshes so far; ``seconds``: their total
    cost; ``path``: the PNG written (None in Jupyter unless ``live_path`` was given).
    """

    def __init__(self, live, record_path=None, live_path=None):
        self.mode = check_live(live)
        if self.mode is None:
            raise LiveError("LiveView needs live=True or a positive int")
        self.kernel = _in_kernel()
        self.path = None if self.kernel and live_path is None else live_target(record_path, live_path)
        self._path_checked = False
        self.refreshes, self.seconds, self.last_cost = 0, 0.0, 0.0
        self._handle = None
        self.png = None  # the latest refresh's PNG bytes
        self._last_end = None
        self._observed = 0
        self._drawn = 0  # observed steps included in the latest refresh
        self.steps, self.losses = [], []
        self.top, self.rank = {}, {}  # layer -> list per observed step (NaN where absent)
        self.latest = {}  # layer -> (values, floor)
        self.quantity = None
        self.group_layer, self.group_top = None, {}  # group -> list per observed step
        self.q_pair, self.q_values = None, []  # -log10 min q of the per-sample test per step
        self._fig = None
        self.broken = None  # why the live view stopped, if it did

    # -- taking steps -------------------------------------------------------------------------

    def observe(self, step, spectra, floors=None, loss=None, per_sample=None, labels=None):
        """Keep what the dashboard shows of one recorded step (NumPy spectra and per-sample
        values, float floors; see ``Introspector.step``), and refresh when it is time."""
        floors = floors or {}
        self.quantity, keys = _batch_keys(spectra, self.quantity)
        n = self._observed
        values = {k: np.asarray(spectra[k], dtype=np.float64) for k in keys}
        self.steps.append(int(step))
        self.losses.append(math.nan if loss is None else float(loss))
        for key, s in values.items():
            layer = key[0]
            floor = float(floors.get(key, math.nan))
            top, rank = _top_and_rank(s, floor)
            self.top.setdefault(layer, [math.nan] * n).append(top)
            self.rank.setdefault(layer, [math.nan] * n).append(rank)
            self.latest[layer] = (s, floor)
        for series in (*self.top.values(), *self.rank.values()):
            if len(series) == n:
                series.append(math.nan)
        self._observe_groups(spectra, per_sample, labels, keys, n)
        self._observed += 1
        if self._due():
            self._safe_refresh()

    def _safe_refresh(self):
        """Refresh during training: a failure (a full disk, a closed frontend) stops the live view
        with one warning instead of stopping the training."""
        try:
            self.refresh()
        except Exception as exc:  # noqa: BLE001 - the dashboard must not end a run
            self.broken = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"autospec live view stopped ({self.broken}); training and its record go on",
                          stacklevel=4)

    def _observe_groups(self, spectra, per_sample, labels, keys, n):
        if self.group_layer is None:
            grouped = [k[0] for k in spectra if k[1] == self.quantity and k[2] is not None and k[3] is None]
            if grouped:
                self.group_layer = grouped[-1]
        if self.group_layer is not None:
            for key, s in spectra.items():
                if key[0] == self.group_layer and key[1] == self.quantity and key[2] is not None and key[3] is None:
                    self.group_top.setdefault(key[2], [math.nan] * n).append(float(s[0]) if len(s) else math.nan)
            for series in self.group_top.values():
                if len(series) == n:
                    series.append(math.nan)
        self.q_values.append(self._per_sample_q(per_sample, labels))

    def _per_sample_q(self, per_sample, labels):
        """-log10 of the smallest BH q of Welch tests of log10 per-sample values between the
        first two groups (one test per value index), at this step; NaN when not available."""
        if not per_sample or labels is None:
            return math.nan
        from .stats import fdr, transform_values, welch_test

        layer = self.group_layer if self.group_layer in per_sample else list(per_sample)[-1]
        x = np.asarray(per_sample[layer], dtype=np.float64)
        x = x[:, None] if x.ndim == 1 else x
        labels = np.asarray(labels).astype(str)
        names = list(dict.fromkeys(labels.tolist()))
        if self.q_pair is None and len(names) >= 2:
            self.q_pair = (layer, names[0], names[1])
        if self.q_pair is None:
            return math.nan
        _, ga, gb = self.q_pair
        a, b = labels == ga, labels == gb
        if a.sum() < 2 or b.sum() < 2:
            return math.nan
        with np.errstate(divide="ignore", invalid="ignore"):
            logx = transform_values(x, True)
            p = np.atleast_1d(welch_test(logx[a], logx[b], axis=0).p)
        if np.isnan(p).all():
            return math.nan
        q = np.nanmin(np.atleast_1d(fdr(p)))
        return float(-np.log10(max(q, 1e-300)))

    def _due(self):
        if self.broken or self._observed <= self._drawn:
            return False
        if self.mode == "auto":
            if self._last_end is None:
                return True
            waited = time.perf_counter() - self._last_end
            return waited >= max(LIVE_MIN_SECONDS, self.last_cost * (1 - LIVE_FRACTION) / LIVE_FRACTION)
        return (self._observed - 1) % self.mode == 0

    def finish(self):
        """Draw the last observed step if the latest refresh did not include it."""
        if self._observed > self._drawn and not self.broken:
            self._safe_refresh()

    # -- drawing ------------------------------------------------------------------------------

    def refresh(self):
        """Redraw the dashboard now (and rewrite the PNG / update the display)."""
        start = time.perf_counter()
        self.png = png = self._render()
        if self.kernel:
            if self._handle is None:
                self._handle = _display(png)
            else:
                _update(self._handle, png)
        if self.path is not None:
            self._write(png)
        self._drawn = self._observed
        self.refreshes += 1
        end = time.perf_counter()
        self.last_cost = end - start
        self.seconds += self.last_cost
        self._last_end = end
        return png

    def _render(self):
        """The dashboard as PNG bytes (the figure is built once, then its lines are updated)."""
        if self._fig is None:
            self._build()
        self._update_artists()
        buf = io.BytesIO()
        self._fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": MARK})
        return buf.getvalue()

    def _write(self, png):
        if not self._path_checked:
            self._path_checked = True
            wanted = self.path
            self.path = free_path(wanted, reusable=_is_ours)
            if self.path != wanted:
                warnings.warn(f"{wanted} exists and was not written by autospec's live view: the live view "
                              f"goes to {self.path} instead", stacklevel=4)
            self.path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomically(self.path, png)

    def _layers_shown(self):
        layers = list(self.top)
        if len(layers) <= MAX_LAYERS:
            return layers
        pick = np.unique(np.linspace(0, len(layers) - 1, MAX_LAYERS).round().astype(int))
        return [layers[i] for i in pick]

    def _build(self):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        grouped = self.group_layer is not None
        cols = 3 if grouped else 2
        fig = Figure(figsize=(4.2 * cols, 6.4))
        FigureCanvasAgg(fig)
        # a fixed layout: constrained layout would be solved again at every refresh
        fig.subplots_adjust(left=0.08 if grouped else 0.1, right=0.98, top=0.9, bottom=0.1, wspace=0.38,
                            hspace=0.42)
        axes = fig.subplots(2, cols, squeeze=False)
        q = self.quantity
        self.ax = dict(loss=axes[0, 0], top=axes[0, 1], rank=axes[1, 0], spectra=axes[1, 1])
        self.ax["loss"].set_title("loss")
        self.ax["top"].set_title(f"top singular value $\\sigma_1$({q})")
        self.ax["rank"].set_title(f"effective rank of {q} (above the floor)")
        self.ax["spectra"].set_title(f"latest spectra of {q} (floor dashed)")
        for name in ("loss", "top", "rank"):
            self.ax[name].set_xlabel("training step")
        self.ax["spectra"].set_xlabel("index i of $\\sigma_i$ (1 = largest)")
        self.ax["top"].set_yscale("log")
        self.ax["spectra"].set_yscale("log")
        self.lines = {"loss": self.ax["loss"].plot([], [], color="k")[0]}
        self.layer_lines = {}
        self.group_lines = {}
        self.q_line = None
        if grouped:
            self.ax["group"] = axes[0, 2]
            self.ax["group"].set_title(f"$\\sigma_1$({q}) per group, {self.group_layer}")
            self.ax["group"].set_yscale("log")
            self.ax["group"].set_xlabel("training step")
            self.ax["test"] = axes[1, 2]
            self.ax["test"].set_xlabel("training step")
            if any(not math.isnan(v) for v in self.q_values) or self.q_pair is not None:
                layer, ga, gb = self.q_pair
                self.ax["test"].set_title(f"per-sample test {ga} vs {gb}, {layer}")
                self.ax["test"].set_ylabel("$-\\log_{10}$ q (FDR)")
                self.ax["test"].axhline(-math.log10(0.05), color="0.5", ls=":", label="q = 0.05")
                self.q_line = self.ax["test"].plot([], [], color="C3", label="this step")[0]
                self.ax["test"].legend(loc="upper left", fontsize=10)
            else:
                self.ax["test"].set_axis_off()
                self.ax["test"].text(0.5, 0.5, "per-sample tests:\nrecord with per_sample=True",
                                     ha="center", va="center", color="0.4", fontsize=10,
                                     transform=self.ax["test"].transAxes)
        for ax in self.ax.values():
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps and indices are whole numbers
        self._title = fig.suptitle("")
        self._fig = fig

    def _layer_artists(self, layer, i):
        artists = self.layer_lines.get(layer)
        if artists is None:
            color = f"C{i % 10}"
            artists = self.layer_lines[layer] = (
                self.ax["top"].plot([], [], color=color, label=layer)[0],
                self.ax["rank"].plot([], [], color=color, label=layer)[0],
                self.ax["spectra"].plot([], [], color=color, marker=".", ms=3, label=layer)[0],
                self.ax["spectra"].plot([], [], color=color, ls="--", lw=0.9)[0],
            )
            self.ax["top"].legend(loc="upper right", fontsize=10)
        return artists

    def _update_artists(self):
        from .plot_floor import above_floor  # matplotlib is loaded by now (_build)

        steps = np.asarray(self.steps, dtype=np.float64)
        loss = np.asarray(self.losses, dtype=np.float64)
        self.lines["loss"].set_data(steps, loss)
        positive = loss[np.isfinite(loss)]
        scale = "log" if positive.size and (positive > 0).all() else "linear"
        if self.ax["loss"].get_yscale() != scale:
            self.ax["loss"].set_yscale(scale)
        for i, layer in enumerate(self._layers_shown()):
            top_line, rank_line, spec_line, floor_line = self._layer_artists(layer, i)
            top_line.set_data(steps, np.asarray(self.top[layer]))
            rank_line.set_data(steps, np.asarray(self.rank[layer]))
            s, floor = self.latest[layer]
            index = np.arange(1, s.size + 1)
            spec_line.set_data(index, above_floor(s, floor))
            floor_line.set_data([1, max(s.size, 1)], [floor, floor] if floor > 0 else [math.nan, math.nan])
        if "group" in self.ax:
            for j, (group, values) in enumerate(self.group_top.items()):
                line = self.group_lines.get(group)
                if line is None:
                    line = self.group_lines[group] = self.ax["group"].plot([], [], color=f"C{j % 10}",
                                                                             label=str(group))[0]
                    self.ax["group"].legend(loc="upper right", fontsize=10)
                line.set_data(steps, np.asarray(values))
            if self.q_line is not None:
                self.q_line.set_data(steps, np.asarray(self.q_values))
        for ax in self.ax.values():
            ax.relim()
            ax.autoscale_view()
        shown = len(self._layers_shown())
        more = f" ({shown} of {len(self.top)} layers shown)" if shown < len(self.top) else ""
        self._title.set_text(f"autospec live: step {self.steps[-1]}, {len(self.steps)} recorded{more}"
                             if self.steps else "autospec live")

    def close(self):
        """Draw what is not drawn yet, then release the figure."""
        self.finish()
        self._fig = None
