"""The live view (autospec.live, ``Introspector(live=...)``): headless PNG rewrites, one display
updated in place in a kernel, refresh counts, bad arguments, users' files kept, the CLI bar."""
import base64
import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import autospec
import minigrad as mg
from autospec import live as live_mod
from autospec.errors import AutoSpecError
from autospec.live import LiveError
from minigrad import nn, optim

ROOT = Path(__file__).resolve().parents[1]


def _train(steps, per_sample=False, **kwargs):
    """A 2-layer MLP trained ``steps`` full-batch steps under an Introspector(**kwargs)."""
    mg.manual_seed(0)
    rng = np.random.default_rng(0)
    x, y = mg.tensor(rng.normal(size=(12, 5))), mg.tensor(rng.integers(0, 3, 12))
    groups = np.where(np.arange(12) < 6, "a", "b")
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3))
    opt, loss_fn = optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss()
    spec = autospec.Introspector(model, per_sample=per_sample, **kwargs)
    for _ in range(steps):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        with spec.step(groups=groups, loss=loss):
            loss.backward()
        opt.step()
    return spec


@pytest.fixture
def no_drawing(monkeypatch):
    """Refreshes without matplotlib (for tests of when and where, not of the picture)."""
    count = iter(range(10**6))
    monkeypatch.setattr(live_mod.LiveView, "_render",
                        lambda self: b"\x89PNG " + live_mod.MARK.encode() + str(next(count)).encode())


@pytest.fixture
def headless(monkeypatch):
    """Outside a kernel, counting the PNG writes."""
    monkeypatch.setattr(live_mod, "_in_kernel", lambda: False)
    writes = []
    real = live_mod.write_bytes_atomically

    def counting(path, data):
        writes.append((Path(path), data))
        real(path, data)

    monkeypatch.setattr(live_mod, "write_bytes_atomically", counting)
    return writes


def test_headless_png_is_rewritten_once_per_refresh(tmp_path, headless):
    target = tmp_path / "view.png"
    spec = _train(1, live=2, live_path=target)
    first = target.read_bytes()
    assert first.startswith(b"\x89PNG") and spec.live.refreshes == 1
    # live=2: recorded steps 1, 3, 5 are drawn
    spec2 = _train(5, live=2, live_path=tmp_path / "five.png")
    assert spec2.live.refreshes == 3 and len([w for w in headless if w[0].name == "five.png"]) == 3
    assert len({data for path, data in headless if path.name == "five.png"}) == 3  # each a new picture
    assert (tmp_path / "five.png").read_bytes() == spec2.live.png
    spec2.close()  # the last recorded step (5) is drawn already: no extra refresh
    assert spec2.live.refreshes == 3
    assert not list(tmp_path.glob(".*.tmp"))  # temp files renamed, none left


@pytest.mark.parametrize("n, steps, every", [(1, 4, 1), (3, 7, 1), (4, 8, 1), (2, 9, 3)])
def test_refresh_count_for_live_n(tmp_path, headless, no_drawing, n, steps, every):
    spec = _train(steps, live=n, every=every, live_path=tmp_path / "v.png")
    recorded = len(range(0, steps, every))
    assert len(spec.record) == recorded
    assert spec.live.refreshes == (recorded - 1) // n + 1 == len(headless)
    spec.close()  # draws the last recorded step when the last refresh did not include it
    assert spec.live.refreshes == (recorded - 1) // n + 1 + ((recorded - 1) % n != 0) == len(headless)


def test_file_backed_record_writes_beside_it(tmp_path, headless, no_drawing):
    started = tmp_path / "started"
    started.touch()  # the run's start, by the file system's own (coarse) clock
    spec = _train(2, live=1, path=tmp_path / "run.h5")
    spec.close()
    assert (tmp_path / "run-live.png").is_file()
    assert spec.live.path == tmp_path / "run-live.png"
    assert os.path.getmtime(tmp_path / "run-live.png") >= os.path.getmtime(started)


def test_in_memory_record_defaults_to_the_working_folder(tmp_path, headless, no_drawing, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _train(1, live=1)
    assert (tmp_path / "autospec-live.png").is_file()


class _StoppedClock:
    """Stands in for autospec.live's ``time`` module: ``perf_counter()`` reads ``now``, which only
    the test moves (the rest of the module is the real one)."""

    def __init__(self):
        self.now = 1000.0

    def perf_counter(self):
        return self.now

    def __getattr__(self, name):
        return getattr(time, name)


def test_adaptive_rate_draws_first_step_then_waits(tmp_path, headless, no_drawing, monkeypatch):
    clock = _StoppedClock()
    monkeypatch.setattr(live_mod, "time", clock)
    spec = _train(6, live=True, live_path=tmp_path / "v.png")
    assert spec.live.mode == "auto" and spec.live.refreshes == 1  # six steps in no time: only the first drawn
    spec.close()
    assert spec.live._drawn == 6  # the final picture holds every step
    view = spec.live  # the rule: wait (1 - f) / f times the last refresh's cost, at least LIVE_MIN_SECONDS
    view._observed += 1
    view.last_cost = 1.0
    view._last_end = clock.now - 0.9 * 9
    assert not view._due()
    view._last_end = clock.now - 9.5
    assert view._due()


def test_the_dashboard_shows_groups_and_per_sample_tests(tmp_path, headless):
    spec = _train(4, per_sample=True, live=1, live_path=tmp_path / "v.png")
    view = spec.live
    assert set(view.ax) == {"loss", "top", "rank", "spectra", "group", "test"}
    assert set(view.group_top) == {"a", "b"} and view.group_layer == "2.weight"
    assert len(view.q_values) == 4 and np.isfinite(view.q_values).all()
    rec = spec.record
    np.testing.assert_allclose(view.top["0.weight"], rec.series("0.weight", "G")[:, 0])
    rank = autospec.stats.effective_rank(rec.series("2.weight", "G"), floor=rec.floor("2.weight", "G"))
    np.testing.assert_allclose(view.rank["2.weight"], rank)
    # the lines were made once and updated in place
    line = view.layer_lines["0.weight"][0]
    spec.live.refresh()
    assert view.layer_lines["0.weight"][0] is line and len(line.get_xdata()) == 4


def test_many_layers_and_other_quantities(tmp_path, headless):
    mg.manual_seed(0)
    layers = [nn.Linear(4, 4) for _ in range(10)]
    model = nn.Sequential(*layers)
    spec = autospec.Introspector(model, quantities=("A", "D"), positions=None, live=1,
                                 live_path=tmp_path / "v.png")
    x = mg.tensor(np.random.default_rng(0).normal(size=(6, 4)))
    loss = (model(x) ** 2).mean()
    with spec.step(loss=loss):
        loss.backward()
    view = spec.live
    assert view.quantity == "A" and len(view.top) == 10 and len(view._layers_shown()) == live_mod.MAX_LAYERS
    assert "8 of 10 layers shown" in view._title.get_text()
    assert autospec.LiveError is LiveError


@pytest.mark.parametrize("bad", [0, -1, 2.5, "yes", [1]])
def test_invalid_live_values_are_one_line_errors(tmp_path, bad):
    with pytest.raises(LiveError) as info:
        _train(0, live=bad, path=tmp_path / "r.h5")
    assert isinstance(info.value, AutoSpecError) and "\n" not in str(info.value)
    assert "live must be" in str(info.value)
    assert not (tmp_path / "r.h5").exists()  # checked before any file is made


def test_invalid_live_path_is_an_error(tmp_path):
    with pytest.raises(LiveError, match=".png"):
        _train(0, live=True, live_path=tmp_path / "v.jpg")
    with pytest.raises(LiveError, match="live is off"):
        _train(0, live_path=tmp_path / "v.png")
    assert _train(1).live is None  # off by default


def test_a_users_png_is_never_overwritten(tmp_path, headless, no_drawing, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "autospec-live.png"
    mine.write_bytes(b"\x89PNG my own figure")
    with pytest.warns(UserWarning, match="not written by autospec") as caught:
        spec = _train(3, live=1)
    assert len(caught) == 1  # said once
    assert mine.read_bytes() == b"\x89PNG my own figure"
    assert spec.live.path == tmp_path / "autospec-live-1.png" and spec.live.path.is_file()
    with pytest.warns(UserWarning) as caught:  # the next run rewrites the file it wrote, not the user's
        again = _train(1, live=1)
    assert len(caught) == 1 and again.live.path == tmp_path / "autospec-live-1.png"
    assert mine.read_bytes() == b"\x89PNG my own figure"
    assert not (tmp_path / "autospec-live-2.png").exists()


def test_in_a_kernel_one_display_is_updated(tmp_path, no_drawing, monkeypatch):
    shown, updates = [], []

    class Handle:
        def update(self, obj):
            updates.append(obj)

    monkeypatch.setattr(live_mod, "_in_kernel", lambda: True)
    monkeypatch.setattr(live_mod, "_display", lambda png: shown.append(png) or Handle())
    monkeypatch.setattr(live_mod, "_update", lambda handle, png: handle.update(png))
    monkeypatch.chdir(tmp_path)
    spec = _train(5, live=1)
    spec.close()
    assert len(shown) == 1 and len(updates) == 4 and updates[-1] == spec.live.png
    assert spec.live.path is None and not list(tmp_path.iterdir())  # no file in a notebook


NOTEBOOK_CELLS = [
    "import numpy as np, minigrad as mg, autospec\nfrom minigrad import nn, optim\n"
    "mg.manual_seed(0); rng = np.random.default_rng(0)\n"
    "x, y = mg.tensor(rng.normal(size=(12, 5))), mg.tensor(rng.integers(0, 3, 12))\n"
    "model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3))\n"
    "opt, loss_fn = optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss()\n"
    "spec = autospec.Introspector(model, live=2)",
    "for _ in range(6):\n    loss = loss_fn(model(x), y)\n    opt.zero_grad()\n"
    "    with spec.step(loss=loss):\n        loss.backward()\n    opt.step()",
    "import hashlib\nspec.close()\nprint(spec.live.refreshes, hashlib.sha256(spec.live.png).hexdigest())",
]


def test_in_a_real_kernel_one_display_data_output_is_updated(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in NOTEBOOK_CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbclient.NotebookClient(nb, timeout=60, resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in nb.cells for o in cell.outputs]
    displays = [o for o in outputs if o.output_type == "display_data"]
    assert len(displays) == 1, outputs  # one display, not one per refresh
    assert nb.cells[1].outputs == displays  # made by the first refresh, in the training cell
    refreshes, digest = nb.cells[2].outputs[0].text.split()
    assert int(refreshes) == 4  # steps 1, 3, 5 and the last (6) at close
    png = base64.b64decode(displays[0].data["image/png"])
    assert hashlib.sha256(png).hexdigest() == digest  # updated to the last refresh (made in cell 3)
    assert not list(tmp_path.glob("*.png"))  # no file in a notebook


def test_progress_bar_text_shows_top_sigma_and_effective_rank():
    from autospec.training import _bar_text

    spec = _train(3)
    text = _bar_text(0.5, spec)
    rec = spec.record
    top = rec.series("2.weight", "G")[-1, 0]
    rank = autospec.stats.effective_rank(rec.series("2.weight", "G")[-1], floor=rec.floor("2.weight", "G")[-1])
    assert text == f"loss=0.5, 2.weight: sigma1(G)={top:.3g}, erank={rank:.3g}"
    spec_a = _train(1, quantities=("A",))
    assert "sigma1(A)" in _bar_text(1.0, spec_a)
    assert _bar_text(1.0, _train(0)) == "loss=1"  # nothing recorded yet


def test_the_live_view_uses_no_pyplot(tmp_path):
    """...and autospec.live is not even imported while no live view is asked for."""
    import subprocess

    code = (
        "import sys, numpy as np, minigrad as mg, autospec\nfrom minigrad import nn\n"
        "m = nn.Sequential(nn.Linear(3, 2))\n"
        "off = autospec.Introspector(m)\n"
        "l = m(mg.tensor(np.ones((2, 3)))).sum()\n"
        "with off.step(loss=l):\n    l.backward()\n"
        "assert off.last_step is not None and 'autospec.live' not in sys.modules, 'live was imported'\n"
        "spec = autospec.Introspector(m, live=1, live_path=sys.argv[1])\n"
        "l = m(mg.tensor(np.ones((2, 3)))).sum()\n"
        "with spec.step(loss=l):\n    l.backward()\n"
        "assert spec.live.refreshes == 1\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "DISPLAY")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "v.png")], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "v.png").stat().st_size > 1000


def test_a_failing_refresh_warns_once_and_training_goes_on(tmp_path, headless, monkeypatch):
    def fail(path, data):
        raise OSError("No space left on device")

    monkeypatch.setattr(live_mod, "write_bytes_atomically", fail)
    with pytest.warns(UserWarning, match="live view stopped .*No space left") as caught:
        spec = _train(4, live=1, live_path=tmp_path / "v.png", path=tmp_path / "r.h5")
        spec.close()
    assert len(caught) == 1 and len(spec.record) == 4 and spec.live.refreshes == 0
    assert len(autospec.load_record(tmp_path / "r.h5")) == 4
