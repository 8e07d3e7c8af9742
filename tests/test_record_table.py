"""Tests of Record.to_dataframe and Record.per_sample_dataframe (autospec.record_table)."""
import sys

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

from autospec.errors import AutoSpecError  # noqa: E402
from autospec.record import Record, RecordError, load_record  # noqa: E402

KEYS = [
    ("0.weight", "G", None, None),
    ("0.weight", "A", None, None),
    ("0.weight", "G", "all", None),  # a group literally named "all"
    ("0.weight", "G", "SZ", None),
    ("attn.in_proj_weight", "G", None, 0),
    ("attn.in_proj_weight", "G", None, 1),
    ("attn.in_proj_weight", "G", None, None),
]


def spectrum(step, salt, k):
    return (k - np.arange(k)) * (1.0 + step) + 0.001 * salt


def fill(rec, n_steps=5):
    """Steps 0, 10, ...: spectra of varying lengths, a key that starts at step 20, floors on some
    keys (and not at step 10), per-sample values with sample ids and per-step labels."""
    for s in range(n_steps):
        spectra = {key: spectrum(s, salt, 2 + (s + salt) % 3) for salt, key in enumerate(KEYS) if key[2] != "SZ"}
        if s >= 2:
            spectra[("0.weight", "G", "SZ", None)] = spectrum(s, 9, 2)
        floors = {} if s == 1 else {KEYS[0]: 2.5 * (1 + s), KEYS[4]: 1.5 * (1 + s)}
        per_sample = {"0.weight": np.arange(3 * 2, dtype=float).reshape(3, 2) + s}
        if s == 3:
            per_sample["0.weight"][1, 1] = np.nan
        rec.append(10 * s, spectra, loss=1.0, floors=floors, per_sample=per_sample,
                   sample_ids=[s, s + 1, s + 2], sample_groups=["SZ", "HC", "SZ"] if s % 2 else ["HC", "HC", "SZ"])
    return rec


@pytest.fixture
def rec():
    return fill(Record())


def test_columns_and_dtypes(rec):
    df = rec.to_dataframe()
    assert list(df.columns) == ["step", "layer", "quantity", "group", "position", "index", "value", "below_floor"]
    assert df["step"].dtype == np.int64 and df["index"].dtype == np.int64
    assert df["value"].dtype == np.float64 and df["below_floor"].dtype == bool
    assert str(df["position"].dtype) == "Int64"
    for col in ("layer", "quantity", "group"):
        assert isinstance(df[col].dtype, pd.CategoricalDtype)
    assert list(df["layer"].cat.categories) == rec.layers
    assert list(df["quantity"].cat.categories) == ["G", "A", "D"]
    assert not df["value"].isna().any()
    with_floor = rec.to_dataframe(floor=True)
    assert list(with_floor.columns)[-1] == "floor" and with_floor["floor"].dtype == np.float64


def _select(df, key):
    layer, quantity, group, position = key
    sel = (df.layer == layer) & (df.quantity == quantity)
    sel &= df.group.isna() if group is None else (df.group == group).fillna(False)
    sel &= df.position.isna() if position is None else (df.position == position).fillna(False)
    return df[sel.astype(bool)]


def _round_trip(rec, df):
    steps = rec.steps
    assert len(df) == sum(int((~np.isnan(rec.series(*key))).sum()) for key in rec.keys())
    for key in rec.keys():
        sub = _select(df, key)
        series = rec.series(*key)
        rebuilt = np.full(series.shape, np.nan)
        rows = np.searchsorted(steps, sub.step.to_numpy())
        rebuilt[rows, sub["index"].to_numpy() - 1] = sub["value"].to_numpy()
        np.testing.assert_array_equal(rebuilt, series, err_msg=str(key))
        # below_floor is exactly where series(..., above_floor=True) removes a recorded value
        cut = np.isnan(rec.series(*key, above_floor=True)) & ~np.isnan(series)
        np.testing.assert_array_equal(sub.below_floor.to_numpy(), cut[rows, sub["index"].to_numpy() - 1])


def test_round_trip_every_key_and_below_floor(rec):
    df = rec.to_dataframe()
    _round_trip(rec, df)
    assert df.below_floor.any() and not df.below_floor.all()
    # no floor known: never below it (step 10 had no floors; A never has one)
    assert not df[df.step == 10].below_floor.any()
    assert not df[df.quantity == "A"].below_floor.any()
    floors = rec.to_dataframe(floor=True)
    assert np.isnan(floors[floors.quantity == "A"]["floor"]).all()
    g = _select(floors, KEYS[0])
    np.testing.assert_array_equal(g["floor"].to_numpy(), rec.floor(*KEYS[0])[np.searchsorted(rec.steps, g.step)])


def test_index_is_one_based(rec):
    df = rec.to_dataframe()
    assert df["index"].min() == 1
    first = _select(df, KEYS[0])
    top = first[first["index"] == 1].set_index("step")["value"]
    np.testing.assert_array_equal(top.to_numpy(), np.nanmax(rec.series(*KEYS[0]), axis=1))
    # a spectrum of length k gives indices 1..k, no NaN padding rows
    step0 = first[first.step == 0]
    assert list(step0["index"]) == [1, 2]


def test_whole_batch_is_missing_group_and_never_collides_with_all(rec):
    df = rec.to_dataframe(layers="0.weight", quantities="G")
    assert set(df.group.cat.categories) == {"all", "SZ"}
    whole = df[df.group.isna()]
    named_all = df[(df.group == "all").fillna(False).astype(bool)]
    assert len(whole) and len(named_all)
    np.testing.assert_array_equal(whole.value.to_numpy(), _select(df, KEYS[0]).value.to_numpy())
    np.testing.assert_array_equal(named_all.value.to_numpy(), _select(df, KEYS[2]).value.to_numpy())
    assert not np.isin(whole.value.to_numpy(), named_all.value.to_numpy()).all()
    # the filters tell None (whole batch) from "all" too
    assert rec.to_dataframe(groups=None).group.isna().all()
    only_all = rec.to_dataframe(groups="all")
    assert (only_all.group == "all").all() and len(only_all) == len(named_all)
    assert set(rec.to_dataframe(groups=[None, "SZ"]).group.astype(object).fillna("whole")) == {"whole", "SZ"}
    # the SZ key starts at step 20: no rows before
    assert rec.to_dataframe(groups="SZ").step.min() == 20


def test_positions(rec):
    df = rec.to_dataframe(layers=["attn.in_proj_weight"])
    assert set(df.position.dropna()) == {0, 1} and df.position.isna().any()
    p1 = rec.to_dataframe(positions=1)
    assert (p1.position == 1).all() and (p1.layer == "attn.in_proj_weight").all()
    np.testing.assert_array_equal(p1.value.to_numpy(), _select(df, KEYS[5]).value.to_numpy())
    summed = rec.to_dataframe(positions=None)
    assert summed.position.isna().all() and set(summed.layer) == {"0.weight", "attn.in_proj_weight"}
    assert len(rec.to_dataframe(positions=[0, None])) == len(df[(df.position != 1).fillna(True).astype(bool)]) + len(
        rec.to_dataframe(layers="0.weight"))


def test_filters_steps_and_above_floor(rec):
    df = rec.to_dataframe()
    some = rec.to_dataframe(steps=[10, 30], quantities=["G"])
    assert set(some.step) == {10, 30} and set(some.quantity) == {"G"}
    pd.testing.assert_frame_equal(
        some.reset_index(drop=True),
        df[df.step.isin([10, 30]) & (df.quantity == "G")].reset_index(drop=True))
    assert set(rec.to_dataframe(steps=20).step) == {20}
    above = rec.to_dataframe(above_floor=True)
    pd.testing.assert_frame_equal(above.reset_index(drop=True), df[~df.below_floor].reset_index(drop=True))
    for bad, match in [(dict(layers="nope"), "unknown layer"), (dict(quantities="D"), "quantity 'D'"),
                       (dict(groups="XX"), "group 'XX'"), (dict(positions=-1), "position"),
                       (dict(steps=[1.5]), "steps")]:
        with pytest.raises(RecordError, match=match):
            rec.to_dataframe(**bad)
    empty = rec.to_dataframe(steps=[999])
    assert len(empty) == 0 and list(empty.columns) == list(df.columns)
    assert empty.dtypes.equals(df.dtypes)


def test_file_backed_record_loaded_lazily(rec, tmp_path):
    path = tmp_path / "run.h5"
    with Record(path=path) as writer:
        fill(writer)
        writer.checkpoint()  # some rows in a segment file, the rest in the journal
        writer.append(50, {KEYS[0]: spectrum(5, 0, 3)}, floors={KEYS[0]: 100.0})
        live = load_record(path)  # not closed yet: segment + journal
        expected = live.to_dataframe()
        _round_trip(live, expected)
    loaded = load_record(path)
    df = loaded.to_dataframe()
    _round_trip(loaded, df)
    pd.testing.assert_frame_equal(df, expected)
    assert df[df.step == 50].below_floor.all()
    pd.testing.assert_frame_equal(df[df.step < 50].reset_index(drop=True), rec.to_dataframe())
    loaded.to_npz(tmp_path / "run.npz")
    pd.testing.assert_frame_equal(load_record(tmp_path / "run.npz").to_dataframe(), df)


def test_per_sample_dataframe(rec):
    df = rec.per_sample_dataframe("0.weight")
    assert list(df.columns) == ["step", "sample", "sample_id", "group", "index", "value"]
    assert str(df.sample_id.dtype) == "Int64" and isinstance(df.group.dtype, pd.CategoricalDtype)
    values = rec.per_sample("0.weight")
    assert len(df) == int((~np.isnan(values)).sum())  # the NaN at step 30 gives no row
    rows = np.searchsorted(rec.steps, df.step.to_numpy())
    samples, index = df["sample"].to_numpy(), df["index"].to_numpy()
    np.testing.assert_array_equal(df.value.to_numpy(), values[rows, samples, index - 1])
    np.testing.assert_array_equal(df.sample_id.to_numpy(dtype=np.int64),
                                  rec.step_sample_ids()[rows, df["sample"].to_numpy()])
    np.testing.assert_array_equal(df.group.astype(str).to_numpy(),
                                  rec.step_sample_groups()[rows, df["sample"].to_numpy()])
    assert df["index"].min() == 1
    assert set(rec.per_sample_dataframe("0.weight", steps=[0]).step) == {0}
    with pytest.raises(RecordError, match="per-sample"):
        rec.per_sample_dataframe("attn.in_proj_weight")


def test_per_sample_without_ids_or_labels():
    rec = Record()
    rec.append(0, {}, per_sample={"l": np.ones((2, 1))})
    rec.append(1, {}, per_sample={"l": np.ones((3, 1))}, sample_ids=[4, 5, 6])
    df = rec.per_sample_dataframe("l")
    assert df.group.isna().all() and len(df) == 5
    assert df.sample_id.isna().tolist() == [True, True, False, False, False]
    assert df.sample_id.dropna().tolist() == [4, 5, 6]


def test_missing_pandas_is_one_line_error(rec, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    for call in (rec.to_dataframe, lambda: rec.per_sample_dataframe("0.weight")):
        with pytest.raises(AutoSpecError) as info:
            call()
        message = str(info.value)
        assert "pip install autospec[tables]" in message and "\n" not in message
