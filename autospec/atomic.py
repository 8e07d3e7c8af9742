"""Files written all or nothing: a temporary file beside the target, then a rename onto it.

A reader (or a process killed at any moment) sees either the old file or the complete new one,
never half of one; a link at the target is replaced, never written through.
"""
import json
import os
import re
import uuid
from pathlib import Path

#: What atomic_write appends to ``"." + name`` for its temporary file (a pattern).
TEMPORARY_SUFFIX = r"\.[0-9a-f]{8}\.tmp"


def atomic_write(path, write, *, replace=True, fsync=True):
    """Call ``write(tmp)`` for a temporary file beside ``path``, fsync it (``fsync=False``: leave it
    to the OS, for files that are rewritten often and cheap to lose, like status files), then
    rename it onto ``path``.

    The rename is atomic: a reader (or a process killed at any moment) sees either the old
    file or the complete new one, never a half-written one. ``replace=False`` never replaces an
    existing file: FileExistsError instead (the file is linked into place, not renamed).
    Returns the number of bytes written.
    """
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{uuid.uuid4().hex[:8]}.tmp")  # TEMPORARY_SUFFIX
    try:
        write(tmp)
        size = os.path.getsize(tmp)
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails when path exists, unlike rename
            os.unlink(tmp)
        return size
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def remove_stale_temporaries(path):
    """Delete temporaries that :func:`atomic_write` left beside ``path`` when a process was killed."""
    directory, base = os.path.split(os.path.abspath(path))
    temporary = re.compile(re.escape(f".{base}") + TEMPORARY_SUFFIX)
    for name in os.listdir(directory):
        if temporary.fullmatch(name):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass


def write_bytes_atomically(path, data, *, fsync=False):
    """Write ``data`` (bytes) to ``path`` all or nothing."""
    def write(tmp):
        with open(tmp, "wb") as fh:
            fh.write(data)

    atomic_write(path, write, fsync=fsync)


def write_text_atomically(path, text, *, fsync=False):
    """Write ``text`` to ``path`` all or nothing."""
    write_bytes_atomically(path, text.encode("utf-8"), fsync=fsync)


def write_json_atomically(path, payload, *, fsync=False):
    """Write ``payload`` as indented JSON to ``path`` all or nothing."""
    write_text_atomically(path, json.dumps(payload, indent=1, default=str), fsync=fsync)


def free_path(path, reusable=None):
    """``path`` if nothing is there, else the first ``<stem>-1<suffix>``, ``-2``... that is free.
    ``reusable(candidate)``: True for a taken name that may be written over all the same."""
    path = Path(path)
    candidate, i = path, 0
    while candidate.exists() and not (reusable is not None and reusable(candidate)):
        i += 1
        candidate = path.with_name(f"{path.stem}-{i}{path.suffix}")
    return candidate
