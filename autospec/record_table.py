"""Records as tidy pandas tables: :meth:`Record.to_dataframe` and :meth:`Record.per_sample_dataframe`.

One row per stored value ("long" or "tidy" form), so that pandas, seaborn and statsmodels work on
a record directly::

    df = rec.to_dataframe()
    df[(df.quantity == "G") & df.group.isna() & df.position.isna()]   # whole batch, summed over positions
    df.groupby(["layer", "step"], observed=True)["value"].max()        # sigma_1 of every key and step

Conventions (the same as in the maths and the figures):

- ``index`` is 1-based: index 1 is sigma_1, the largest singular value of that spectrum.
- ``group`` is missing (``pd.NA``) for the whole batch (group None of the record), so it can never
  collide with a group label, not even one literally named "all". pandas' ``groupby`` drops
  missing keys unless told ``dropna=False``; ``df.group.cat.add_categories("whole batch")
  .fillna("whole batch")`` names them for a plot legend.
- ``position`` is missing (``pd.NA``) for the sum over tied positions (position None).
- NaN values (spectra shorter than the longest of their key, steps that did not record a key) give
  no row: every row holds a value that was recorded.

pandas is an optional dependency (``pip install autospec[tables]``), imported only here.
"""
import numpy as np

from ._h5 import RecordError
from . import _record_input as check

COLUMNS = ("step", "layer", "quantity", "group", "position", "index", "value", "below_floor")
PER_SAMPLE_COLUMNS = ("step", "sample", "sample_id", "group", "index", "value")


def _pandas():
    try:
        import pandas
    except ImportError:
        raise RecordError("tables need pandas, which is not installed: pip install autospec[tables]") from None
    return pandas


def _as_list(value, what):
    """None -> None (everything); a str -> [str]; an iterable -> list."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    try:
        return list(value)
    except TypeError:
        raise RecordError(f"{what} must be a str, a list of them, or None (all), got {value!r}") from None


def _as_choice_list(value, normalize, what):
    """``...`` -> None (everything); one value (None included) -> [value]; a list/tuple/set -> list."""
    if value is Ellipsis:
        return None
    values = list(value) if isinstance(value, (list, tuple, set, frozenset, np.ndarray)) else [value]
    try:
        return [normalize(v) for v in values]
    except (TypeError, ValueError) as exc:
        raise RecordError(f"{what}: {exc}") from None


def _step_rows(rec, steps):
    """Row numbers of the record selected by ``steps`` (None: all; an int; an iterable of ints)."""
    all_steps = rec.steps
    if steps is None:
        return all_steps, None
    wanted = np.atleast_1d(np.asarray(steps))
    if wanted.dtype.kind not in "iu" or wanted.ndim != 1:
        raise RecordError(f"steps must be None (all), a step number or a list of them, got {steps!r}")
    rows = np.flatnonzero(np.isin(all_steps, wanted))
    return all_steps[rows], rows


def _select_keys(rec, layers, quantities, groups, positions):
    layers = _as_list(layers, "layers")
    if layers is not None:
        for layer in layers:
            rec.layer_tree(layer)  # RecordError naming the recorded layers
    quantities = _as_list(quantities, "quantities")
    if quantities is not None:
        recorded = rec.quantities
        for q in quantities:
            if q not in recorded:
                raise RecordError(f"quantity {q!r} is not recorded: recorded are {check.choices(recorded)}")
    groups = _as_choice_list(groups, check.check_group, "groups")
    if groups is not None:
        recorded = [None, *rec.groups]
        for g in groups:
            if g not in recorded:
                raise RecordError(f"group {g!r} is not recorded: recorded groups are {check.choices(recorded)} "
                                  f"(None = whole batch)")
    positions = _as_choice_list(positions, check.check_position, "positions")
    keys = [key for key in rec.keys()
            if (layers is None or key[0] in layers) and (quantities is None or key[1] in quantities)
            and (groups is None or key[2] in groups) and (positions is None or key[3] in positions)]
    return keys


def spectra_table(rec, layers=None, quantities=None, groups=Ellipsis, positions=Ellipsis, steps=None,
                  above_floor=False, floor=False):
    """The body of :meth:`autospec.record.Record.to_dataframe` (see there)."""
    pd = _pandas()
    keys = _select_keys(rec, layers, quantities, groups, positions)
    step_values, rows = _step_rows(rec, steps)
    cols = {name: [] for name in ("step", "index", "value", "below", "floor")}
    counts = np.zeros(len(keys), dtype=np.intp)
    with rec.files_held_open():
        for code, key in enumerate(keys):
            values = rec.series(*key)
            floors = rec.floor(*key)
            if rows is not None:
                values, floors = values[rows], floors[rows]
            with np.errstate(invalid="ignore"):
                below = values <= floors[:, None]  # False where the floor (or the value) is NaN
            keep = ~np.isnan(values)
            if above_floor:
                keep &= ~below
            per_row = keep.sum(axis=1)
            counts[code] = per_row.sum()
            cols["step"].append(np.repeat(step_values, per_row))  # rows in step order, values in index order
            cols["index"].append(np.broadcast_to(np.arange(1, keep.shape[1] + 1), keep.shape)[keep])
            cols["value"].append(values[keep])
            cols["below"].append(below[keep])
            if floor:
                cols["floor"].append(np.repeat(floors, per_row))
    dtypes = {"step": np.int64, "index": np.int64, "value": np.float64, "below": bool, "floor": np.float64}
    cat = {name: np.concatenate(parts) if parts else np.zeros(0, dtypes[name]) for name, parts in cols.items()}
    key_code = np.repeat(np.arange(len(keys), dtype=np.intp), counts)

    layer_names = list(dict.fromkeys(rec.layers))
    group_names = rec.groups
    layer_of = np.array([layer_names.index(k[0]) for k in keys] + [0], dtype=np.int32)
    quantity_of = np.array([check.QUANTITIES.index(k[1]) for k in keys] + [0], dtype=np.int32)
    group_of = np.array([-1 if k[2] is None else group_names.index(k[2]) for k in keys] + [0], dtype=np.int32)
    position_of = np.array([-1 if k[3] is None else k[3] for k in keys] + [0], dtype=np.int64)
    position = position_of[key_code]

    data = {
        "step": cat["step"].astype(np.int64, copy=False),
        "layer": pd.Categorical.from_codes(layer_of[key_code], categories=layer_names),
        "quantity": pd.Categorical.from_codes(quantity_of[key_code], categories=list(check.QUANTITIES)),
        "group": pd.Categorical.from_codes(group_of[key_code], categories=group_names),
        "position": pd.arrays.IntegerArray(np.maximum(position, 0), position < 0),
        "index": cat["index"].astype(np.int64, copy=False),
        "value": cat["value"],
        "below_floor": cat["below"],
    }
    if floor:
        data["floor"] = cat["floor"]
    return pd.DataFrame(data, copy=False)


def per_sample_table(rec, layer, steps=None):
    """The body of :meth:`autospec.record.Record.per_sample_dataframe` (see there)."""
    pd = _pandas()
    with rec.files_held_open():
        values = rec.per_sample(layer)  # (n_steps, N, k_s), RecordError for an unknown layer
        step_values, rows = _step_rows(rec, steps)
        ids = rec.step_sample_ids()
        labels = rec.step_sample_groups()
    if rows is not None:
        values = values[rows]
    n_steps, n, k = values.shape
    r, s, c = np.nonzero(~np.isnan(values))

    sample_id = np.full(r.size, -1, dtype=np.int64)
    if ids is not None:
        ids = ids if rows is None else ids[rows]
        inside = s < ids.shape[1]
        sample_id[inside] = ids[r[inside], s[inside]]

    group_names, group_codes = [], np.full(r.size, -1, dtype=np.int32)
    if labels is not None:
        labels = labels if rows is None else labels[rows]
        group_names, codes = np.unique(labels, return_inverse=True)
        codes = codes.reshape(labels.shape).astype(np.int32)
        if group_names.size and group_names[0] == "":  # "" pads: no label
            group_names, codes = group_names[1:], codes - 1
        inside = s < labels.shape[1]
        group_codes[inside] = codes[r[inside], s[inside]]
        group_names = group_names.tolist()

    return pd.DataFrame({
        "step": step_values[r].astype(np.int64),
        "sample": s.astype(np.int64),
        "sample_id": pd.arrays.IntegerArray(np.maximum(sample_id, 0), sample_id < 0),
        "group": pd.Categorical.from_codes(group_codes, categories=group_names),
        "index": (c + 1).astype(np.int64),
        "value": values[r, s, c],
    }, copy=False)
