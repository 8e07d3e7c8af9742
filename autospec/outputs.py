"""The output folder of a run (``--out``): which files in it are ours, the lock that keeps two
runs out of one folder, backups instead of deletions, and the run's ``status.json``.

A run writes only the names in :data:`OWNED_NAMES`. Before it starts, :func:`survey` looks at
what the folder already holds:

* nothing of ours: a fresh run;
* a previous run with the same settings: it is continued (resumed) from its checkpoint;
* a previous run with other settings: an error naming the settings that differ, unless
  ``restart``/``force``, which move the old files into ``backup-YYYYmmdd-HHMMSS/`` first;
* files under our names that we did not write (e.g. the user's own ``config.toml``): an error
  naming them, unless ``force``, which moves them into the backup folder.

Nothing is ever deleted. Other files in the folder (names we never write) are left alone.
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ._journal import JOURNAL_SUFFIX
from .config import ExperimentError

RECORD_NAME = "record.h5"
STATUS_NAME = "status.json"
CONFIG_NAME = "config.toml"
SUMMARY_NAME = "summary.txt"
CHECKPOINT_NAME = "checkpoint.npz"
FIGURES_NAME = "figures"
LOCK_NAME = "autospec.lock"
BACKUP_PREFIX = "backup-"
#: The first characters of every config.toml a run writes (a user's own file does not start so).
CONFIG_HEADER = "# autospec run "
#: Every name a run writes into its folder (the lock file stays; it holds no data).
OWNED_NAMES = (RECORD_NAME, RECORD_NAME + JOURNAL_SUFFIX, STATUS_NAME, CONFIG_NAME, SUMMARY_NAME,
               CHECKPOINT_NAME, FIGURES_NAME)


class OutputFolderError(ExperimentError):
    """The --out folder cannot be used as asked (a file, in use, or holding other files)."""


# ----------------------------------------------------------------------------- the folder itself


def check_not_a_file(out_dir, flag="--out"):
    """A one-line error when ``out_dir`` names an existing file (it must be a folder)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"{flag} {out} is an existing file, not a folder; choose a folder name")
    return out


def make_out_dir(out_dir, flag="--out"):
    """``out_dir`` as a Path, created if missing; a one-line error when it names a file."""
    out = check_not_a_file(out_dir, flag)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a parent is a file
        raise OutputFolderError(f"{flag} {out}: a part of that path is a file, not a folder") from None
    return out


class RunLock:
    """An exclusive lock on ``OUT/autospec.lock`` for the run's life (``with RunLock(out): ...``).

    The kernel drops the lock when the process ends in any way (even SIGKILL), so it cannot go
    stale; a second run on the same folder gets a one-line error naming the holder's process id.
    """

    def __init__(self, folder):
        self.path = Path(folder) / LOCK_NAME
        self._fd = None
        self.created = False

    def acquire(self):
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            self.created = True
        except FileExistsError:
            try:
                fd = os.open(self.path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
            except OSError as exc:  # a link or something else that is not our plain lock file
                raise OutputFolderError(f"{self.path} is not a plain file ({exc.strerror}); move it away or "
                                        f"choose another --out") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise OutputFolderError(f"{self.path.parent} is in use by process {holder} (another autospec run); "
                                    f"wait for it to end or choose another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self, remove=False):
        """Let go of the lock; ``remove`` also deletes the lock file when this run created it."""
        if self._fd is None:
            return
        if remove and self.created:
            self.path.unlink(missing_ok=True)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False


# ----------------------------------------------------------------------------- status.json


def read_status(out_dir):
    """The run's status.json as a dict (state: running/finished/interrupted/failed), or None."""
    path = Path(out_dir) / STATUS_NAME
    if not path.is_file():
        return None
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) else None


def is_our_status(status):
    """True when a parsed status.json was written by an autospec run."""
    return isinstance(status, dict) and isinstance(status.get("config_digest"), str) and "experiment" in status


def describe_stale(status):
    """A sentence about a previous run that did not finish, or None."""
    if not status or status.get("state") == "finished":
        return None
    state = status.get("state")
    if state in ("running", "writing"):
        state = "stopped without finishing (killed?)"
    return (f"previous run {state} at epoch {status.get('epoch')} of {status.get('epochs')} "
            f"(step {status.get('step')}, {status.get('steps_recorded', '?')} steps recorded)")


# ----------------------------------------------------------------------------- what the folder holds


@dataclass
class FolderSurvey:
    """What a run folder held before a run started."""

    previous: dict | None = None  # status.json of an earlier autospec run in it, or None
    ours: list = field(default_factory=list)  # names present that that run wrote
    foreign: list = field(default_factory=list)  # names we would write, present, not written by us

    @property
    def results(self):
        """Our names present that hold results (not just the status and the resolved config)."""
        return [n for n in self.ours if n not in (STATUS_NAME, CONFIG_NAME)]


def _present(out):
    return [name for name in OWNED_NAMES if os.path.lexists(out / name)]


def config_header(label):
    """The comment that opens the config.toml a run writes (how we recognise it later)."""
    return f"{CONFIG_HEADER[2:]}{label}: resolved settings"


def _config_is_ours(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(len(CONFIG_HEADER)) == CONFIG_HEADER
    except OSError:
        return False


def survey(out_dir):
    """Sort the names we write that already exist in ``out_dir`` into ours and foreign."""
    out = Path(out_dir)
    present = _present(out)
    status = read_status(out)
    if not is_our_status(status):
        return FolderSurvey(None, [], present)
    result = FolderSurvey(status)
    for name in present:
        ours = not (out / name).is_symlink() and (name != CONFIG_NAME or _config_is_ours(out / name))
        (result.ours if ours else result.foreign).append(name)
    return result


def move_into_backup(out_dir, names):
    """Move ``names`` (files or folders in ``out_dir``) into a new ``backup-YYYYmmdd-HHMMSS[-n]``
    folder inside it; returns that folder (None when there was nothing to move). Never deletes."""
    out = Path(out_dir)
    names = [n for n in names if os.path.lexists(out / n)]
    if not names:
        return None
    backup = new_backup_folder(out)
    for name in names:
        os.rename(out / name, backup / name)
    return backup


def new_backup_folder(parent):
    """A new, empty ``backup-YYYYmmdd-HHMMSS[-n]`` folder inside ``parent`` (never an existing one)."""
    parent = Path(parent)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        backup = parent / (BACKUP_PREFIX + stamp + (f"-{n}" if n else ""))
        try:
            backup.mkdir(parents=True)
            return backup
        except FileExistsError:
            continue
    raise OutputFolderError(f"{parent}: cannot create a backup folder named {BACKUP_PREFIX}{stamp}")


def format_names(names):
    return ", ".join(n + ("/" if n == FIGURES_NAME else "") for n in names)
