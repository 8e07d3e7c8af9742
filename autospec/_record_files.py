"""Files beside a record (its journal, its segments): found, read and removed only safely.

A record file names other files (its journal, its segment files). A record we read must never
make us read or delete anything outside its folder, so every such name must be a plain file
name beside the record and a regular file (no links, devices or pipes); reads are bounded by
the file's real size; a file is deleted only after checking that it belongs to the same run.
"""
import os
import re
import stat

from . import _journal
from .atomic import TEMPORARY_SUFFIX
from ._h5 import H5Source, RecordError, open_h5


def damaged_or_foreign(path, why):
    return RecordError(f"{path}: damaged or foreign record ({why})")


def journal_beside(record_path, name):
    """Path of the journal ``name`` that the record file names: only a plain file name beside it."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or os.sep in name or "\x00" in name:
        raise damaged_or_foreign(record_path, f"its journal {name!r} is not a plain file name beside it")
    return os.path.join(os.path.dirname(record_path), name)


def read_regular_file(record_path, path):
    """The bytes of ``path`` (never following a link, only a regular file), or None when missing."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:  # ELOOP: a symbolic link
        raise damaged_or_foreign(record_path, f"its journal {os.path.basename(path)!r} cannot be opened "
                                               f"as a plain file ({exc.strerror})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise damaged_or_foreign(record_path, f"its journal {os.path.basename(path)!r} is not a regular file")
    with os.fdopen(fd, "rb") as fh:
        return fh.read(st.st_size)  # never more than the file's real size


def remove_if_own_journal(record_path, path, run_id):
    """Delete the journal ``path`` only when it is ``<record name>.journal`` beside the record, a
    regular file, and its header names run ``run_id`` (else it is left alone: its frames are not
    needed any more, and it might be another record's)."""
    if path != os.path.join(os.path.dirname(record_path), os.path.basename(record_path) + _journal.JOURNAL_SUFFIX):
        return
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            return
        with open(path, "rb") as fh:
            head = fh.read(len(_journal.journal_header(run_id)))
    except OSError:
        return
    if head[len(_journal.JOURNAL_MAGIC) + 4:] == run_id.encode("ascii") and head.startswith(_journal.JOURNAL_MAGIC):
        os.unlink(path)


def segment_name(record_path, run_id, number):
    """File name of segment ``number`` of a run: ``<record name>.<run id prefix>.seg<number>``."""
    return f"{os.path.basename(record_path)}.{run_id[:8]}.seg{number:05d}"


def segment_beside(record_path, name):
    """Path of a segment file the record names: a plain name beside it, a regular file (not a link)."""
    path = journal_beside(record_path, name)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise damaged_or_foreign(record_path, f"its segment file {name!r} is missing") from None
    if not stat.S_ISREG(st.st_mode):
        raise damaged_or_foreign(record_path, f"its segment file {name!r} is not a regular file")
    return path


def remove_segments(record_path, run_id):
    """Delete the segment files of run ``run_id`` beside ``record_path`` (listed or left over by a
    killed flush), each only after checking that its header names that run, and the temporary
    files of segment writes of that run that were killed."""
    directory = os.path.dirname(record_path)
    prefix = re.escape(segment_name(record_path, run_id, 0)[:-5])
    segment = re.compile(prefix + r"\d{5,}")
    temporary = re.compile(r"\." + prefix + r"\d{5,}" + TEMPORARY_SUFFIX)
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if temporary.fullmatch(name):
            _unlink_regular(path)
        elif segment.fullmatch(name) and _segment_of(path, run_id):
            _unlink_regular(path)


def _segment_of(path, run_id):
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        with open_h5(path) as f:
            return str(f.attrs.get("run_id", "")) == run_id and str(f.attrs.get("part_of", "")) != ""
    except (OSError, RecordError):
        return False


def _unlink_regular(path):
    try:
        if stat.S_ISREG(os.lstat(path).st_mode):
            os.unlink(path)
    except OSError:
        pass


def record_run_id(path):
    """The run id of the record file at ``path``, or None when there is none (or it is not a record)."""
    if not os.path.isfile(path):
        return None
    try:
        return H5Source(path).run_id
    except (OSError, RecordError):
        return None
