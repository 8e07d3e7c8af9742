"""Participants tables (CSV/TSV) and matching subject ids to data files."""
import csv
import re
from pathlib import Path

import numpy as np

from ._errors import DataFileNotFoundError, DatasetError
from ._validate import normalize_group, normalize_sex


def read_table(path, what="table"):
    """(column names, rows as dicts of str) of a CSV/TSV file (delimiter by suffix or sniffed)."""
    path = Path(path)
    if not path.is_file():
        raise DataFileNotFoundError(f"{what} not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{what} {path} is not UTF-8 text (byte {exc.start}: {exc.reason}); save it as "
                           f"CSV/TSV text") from None
    if "\0" in text:
        raise DatasetError(f"{what} {path} holds NUL bytes: a binary file, not CSV/TSV text")
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise DatasetError(f"{what} {path} is empty")
    if path.suffix.lower() == ".tsv":
        delimiter = "\t"
    else:
        try:
            delimiter = csv.Sniffer().sniff(lines[0], delimiters=",\t;").delimiter
        except csv.Error:
            delimiter = ","
    reader = csv.reader(lines, delimiter=delimiter)
    header = [name.strip() for name in next(reader)]
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise DatasetError(f"{what} {path}: duplicate column name(s) {duplicates}")
    rows = []
    for line_no, fields in enumerate(reader, start=2):
        if len(fields) != len(header):
            raise DatasetError(f"{what} {path}, row {line_no}: {len(fields)} fields, expected "
                               f"{len(header)} (columns {header})")
        rows.append({name: value.strip() for name, value in zip(header, fields)})
    if not rows:
        raise DatasetError(f"{what} {path} has a header but no rows")
    return header, rows


def find_column(header, name, path, required=True):
    """The column of ``header`` called ``name`` (exact, else case-insensitive), or None."""
    if name is None:
        return None
    if name in header:
        return name
    folded = [col for col in header if col.lower() == str(name).lower()]
    if len(folded) == 1:
        return folded[0]
    if required:
        raise DatasetError(f"{path}: no column {name!r}; columns are {header}")
    return None


def _id_aliases(subject):
    subject = str(subject).strip()
    aliases = {subject}
    if subject.lower().startswith("sub-"):
        aliases.add(subject[4:])
    else:
        aliases.add("sub-" + subject)
    return aliases


class Participants:
    """Group (and optional sex/age) labels of a participants table, looked up by subject id.

    Ids match exactly or up to a BIDS "sub-" prefix. Group labels are normalized to "SZ"/"HC"
    and sex labels to "M"/"F" when the table is read, so bad labels fail early and name the row.
    """

    def __init__(self, path, subject_column="subject", group_column="group",
                 sex_column="sex", age_column="age"):
        self.path = Path(path)
        header, rows = read_table(self.path, what="participants table")
        subj_col = find_column(header, subject_column, self.path)
        group_col = find_column(header, group_column, self.path)
        sex_col = find_column(header, sex_column, self.path, required=False)
        age_col = find_column(header, age_column, self.path, required=False)
        self.has_sex, self.has_age = sex_col is not None, age_col is not None
        self._records = {}
        self._by_alias = {}
        for line_no, row in enumerate(rows, start=2):
            where = f"{self.path}, row {line_no} (subject {row[subj_col]!r}): "
            subject = row[subj_col]
            if not subject:
                raise DatasetError(f"{self.path}, row {line_no}: empty subject id")
            if subject in self._records:
                raise DatasetError(f"{self.path}: subject {subject!r} appears more than once")
            record = {"group": normalize_group(row[group_col], where)}
            if sex_col is not None:
                record["sex"] = normalize_sex(row[sex_col], where)
            if age_col is not None:
                try:
                    record["age"] = float(row[age_col])
                except ValueError:
                    raise DatasetError(f"{where}age {row[age_col]!r} is not a number") from None
            self._records[subject] = record
            for alias in _id_aliases(subject):
                self._by_alias.setdefault(alias, subject)
        self._patterns = None

    @property
    def subjects(self):
        return list(self._records)

    def resolve(self, subject, source):
        """The table's spelling of ``subject`` (read from ``source``), or a ValueError."""
        for alias in _id_aliases(subject):
            if alias in self._by_alias:
                return self._by_alias[alias]
        raise DatasetError(f"subject {subject!r} (from {source}) has no row in the participants "
                           f"table {self.path}")

    def record(self, subject):
        return self._records[subject]

    def subject_in_name(self, filename):
        """The subject whose id appears in ``filename`` delimited by non-alphanumerics.

        The longest matching id wins (so "sub-10" beats "10"); no match or a tie is an error.
        """
        if self._patterns is None:
            self._patterns = [
                (len(alias), subject,
                 re.compile(r"(?<![A-Za-z0-9])" + re.escape(alias) + r"(?![A-Za-z0-9])"))
                for subject in self._records for alias in _id_aliases(subject)]
        hits = {}
        for length, subject, pattern in self._patterns:
            if pattern.search(filename):
                hits[subject] = max(hits.get(subject, 0), length)
        if not hits:
            raise DatasetError(f"file {filename!r} matches no subject of the participants table "
                               f"{self.path} (a subject id must appear in the file name, delimited "
                               f"by non-alphanumeric characters)")
        best = max(hits.values())
        winners = sorted(s for s, length in hits.items() if length == best)
        if len(winners) > 1:
            raise DatasetError(f"file {filename!r} matches several subjects {winners} of {self.path}")
        return winners[0]

    def labels_for(self, subjects):
        """(groups, per-sample meta) for ``subjects``, in order; sex/age when the table has them."""
        groups = np.array([self._records[s]["group"] for s in subjects], dtype=str)
        meta = {"subject": np.array(subjects, dtype=str)}
        if self.has_sex:
            meta["sex"] = np.array([self._records[s]["sex"] for s in subjects], dtype=str)
        if self.has_age:
            meta["age"] = np.array([self._records[s]["age"] for s in subjects], dtype=np.float64)
        return groups, meta
