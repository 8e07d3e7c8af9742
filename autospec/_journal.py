"""The append journal of a file-backed record: one checksummed, self-describing frame per event.

Private helper of :mod:`autospec.record` (see its docstring for the crash-safety scheme).

File:   JOURNAL_MAGIC (16 bytes) | uint32 version | run_id (32 ascii hex) | frames...
Frame:  b"ASJF" | uint32 body length | uint32 crc32(body) | body
Body:   uint32 head length | head (JSON) | uint32 keys length | keys | payload

* head: {"t": "step", "i": row, "s": step, "l": loss, "x": {extra}, "k": [length of each spectrum],
  "f": 1 when floors follow, "p": [[layer, N, k_s]...], "n": number of sample ids,
  "g": [distinct labels], "gd": dtype of the label codes} -- or {"t": "groups", "v": [labels]},
  {"t": "meta", "v": {update}}.
* keys: zlib-compressed JSON list of the step's spectrum keys [layer, quantity, group, position],
  repeated in every frame, so that every frame decodes on its own: a damaged frame costs exactly
  its own step, never the frames after it. (Compressed, and encoded once per distinct key list by
  the writer and decoded once per distinct blob by the reader, so the cost is small.)
* payload: little-endian float64 spectra (concatenated in key order), then float64 floors (one per
  key, NaN where not given) when "f", then the float64 per-sample arrays, then int64 sample ids,
  then the per-step group labels as codes into "g" (uint8/16/32).

A frame is written with one write() of a complete buffer; a writer killed mid-write leaves a
prefix of the file, i.e. at worst an incomplete last frame, which readers ignore silently. A frame
that fails its checksum *followed by more data* is damage: the reader skips it, scans forward for
the next frame marker whose checksum holds, and reports what it skipped (the loader warns once).
Version 1 journals (key ids defined once, in the first frame that used them) are still read.
"""
import json
import os
import struct
import zlib
from collections import namedtuple

import numpy as np

from .errors import AutoSpecError

JOURNAL_MAGIC = b"AUTOSPEC-JOURNAL"
JOURNAL_SUFFIX = ".journal"
_FRAME = struct.Struct("<4sII")
_FRAME_MAGIC = b"ASJF"
_U32 = struct.Struct("<I")
_VERSION = 2
_MAX_KEYS_BYTES = 64 << 20  # a key list never inflates beyond this (a crafted frame cannot exhaust memory)

StepData = namedtuple("StepData", "row step loss extra spectra floors per_sample groups ids")
StepData.__doc__ = """One appended step, validated: spectra [(key, 1-D float64)], floors {key: float},
per_sample [(layer, (N, k_s) float64)], groups str (N,) or None, ids int64 (N,) or None."""


class JournalDamage(AutoSpecError, ValueError):
    """A journal that cannot be read at all (bad magic bytes or header)."""


def journal_header(run_id, version=_VERSION):
    return JOURNAL_MAGIC + _U32.pack(version) + run_id.encode("ascii")


def _code_dtype(n_labels):
    return "<u1" if n_labels < 1 << 8 else "<u2" if n_labels < 1 << 16 else "<u4"


class JournalWriter:
    """Append-only journal: one frame per event, each handed to the OS before the call returns."""

    def __init__(self, path, run_id, fsync=False):
        self.path = path
        self._header = journal_header(run_id)
        self._fsync = fsync
        self._keys_blob = (None, b"")  # (key tuple, its encoded blob) of the last frame
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
        try:
            self._fd = os.open(path, flags, 0o644)
        except OSError as exc:
            raise JournalDamage(f"cannot create the record journal {path} ({exc.strerror}; "
                                f"a link or folder of that name is in the way)") from None
        self._size = 0
        self.bytes_written = 0
        self._write_all(self._header)

    def _write_all(self, data):
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
            if self._fsync:
                os.fsync(self._fd)
        except BaseException:
            # never leave a torn frame in the middle of the journal: cut back to the last whole one
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                pass
            raise
        self._size += len(data)
        self.bytes_written += len(data)

    def _frame(self, head, keys_blob=b"", payload=b""):
        hb = json.dumps(head, separators=(",", ":")).encode("utf-8")
        body = b"".join((_U32.pack(len(hb)), hb, _U32.pack(len(keys_blob)), keys_blob, payload))
        self._write_all(_FRAME.pack(_FRAME_MAGIC, len(body), zlib.crc32(body)) + body)

    def _keys(self, keys):
        keys = tuple(keys)
        if self._keys_blob[0] != keys:
            self._keys_blob = (keys, zlib.compress(json.dumps([list(k) for k in keys]).encode("utf-8"), 6))
        return self._keys_blob[1]

    def write_step(self, s):
        """Append one StepData as a frame."""
        keys = [key for key, _ in s.spectra]
        loss = None if np.isnan(s.loss) else s.loss
        head = {"t": "step", "i": s.row, "s": s.step, "l": loss, "x": s.extra, "k": [a.shape[0] for _, a in s.spectra]}
        floats = [a for _, a in s.spectra]
        if s.floors:
            head["f"] = 1
            floats.append(np.array([s.floors.get(key, np.nan) for key in keys]))
        if s.per_sample:
            head["p"] = [[layer, a.shape[0], a.shape[1]] for layer, a in s.per_sample]
            floats.extend(a.ravel() for _, a in s.per_sample)
        payload = [np.concatenate(floats).astype("<f8", copy=False).tobytes()] if floats else []
        if s.ids is not None:
            head["n"] = int(s.ids.shape[0])
            payload.append(s.ids.astype("<i8", copy=False).tobytes())
        if s.groups is not None:
            table, codes = np.unique(s.groups, return_inverse=True)
            head["g"] = table.tolist()
            head["gd"] = _code_dtype(len(table))
            payload.append(codes.astype(head["gd"]).tobytes())
        self._frame(head, self._keys(keys), b"".join(payload))

    def write_sample_groups(self, labels):
        self._frame({"t": "groups", "v": [str(x) for x in labels]})

    def write_metadata(self, update):
        self._frame({"t": "meta", "v": update})

    def reset(self):
        """Drop every frame (they are now stored elsewhere); the next frames start afresh."""
        os.ftruncate(self._fd, len(self._header))
        self._size = len(self._header)

    def close(self, remove=False):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if remove:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


# ----------------------------------------------------------------------------- reading

SKIPPED = "skipped"  # event ("skipped", first byte, n bytes): damaged frames were left out here


def read_journal(data, run_id, where):
    """Events of the journal bytes ``data``, or None when they belong to another run (or none yet).

    Events: StepData, ("groups", labels), ("meta", dict), and ("skipped", at byte, n bytes) where
    damaged frames were left out. ``where`` names the file in error messages.
    """
    if len(data) < len(JOURNAL_MAGIC) + _U32.size + len(run_id):
        if JOURNAL_MAGIC.startswith(data[: len(JOURNAL_MAGIC)]):
            return None  # still being created (or killed while creating it): no frames yet
        raise JournalDamage(f"{where}: not an autospec record journal (bad magic bytes)")
    if not data.startswith(JOURNAL_MAGIC):
        raise JournalDamage(f"{where}: not an autospec record journal (bad magic bytes)")
    (version,) = _U32.unpack_from(data, len(JOURNAL_MAGIC))
    if version not in (1, _VERSION):
        raise JournalDamage(f"{where}: journal format version {version} is not one this autospec reads")
    header = journal_header(run_id, version)
    if data[: len(header)] != header:
        return None  # a stale journal of another run
    decode = _Decoder(version)
    events, pos, size = [], len(header), len(data)
    while pos < size:
        body, end = _frame_at(data, pos)
        event = None if body is None else decode(body)
        if event is not None:
            events.append(event)
            pos = end
            continue
        resume_at = _next_frame(data, pos + 1, decode)
        if resume_at is None:
            if _whole_frame_length(data, pos) == size - pos:
                events.append((SKIPPED, pos, size - pos))  # a complete last frame that fails its checksum
            break  # else a torn last frame (a writer killed mid-write): that step never completed
        events.append((SKIPPED, pos, resume_at - pos))
        pos = resume_at
    return events


def _frame_at(data, pos):
    """(body, end) of a frame starting at ``pos`` whose checksum holds, else (None, None)."""
    if len(data) - pos < _FRAME.size:
        return None, None
    magic, blen, crc = _FRAME.unpack_from(data, pos)
    end = pos + _FRAME.size + blen
    if magic != _FRAME_MAGIC or end > len(data):
        return None, None
    body = memoryview(data)[pos + _FRAME.size: end]
    if zlib.crc32(body) != crc:
        return None, None
    return body, end


def _whole_frame_length(data, pos):
    """Length a frame header at ``pos`` declares (marker included), or None."""
    if len(data) - pos < _FRAME.size:
        return None
    magic, blen, _ = _FRAME.unpack_from(data, pos)
    return _FRAME.size + blen if magic == _FRAME_MAGIC else None


def _next_frame(data, start, decode):
    """Position of the next frame marker at or after ``start`` that starts a valid frame."""
    while True:
        pos = data.find(_FRAME_MAGIC, start)
        if pos < 0:
            return None
        body, _ = _frame_at(data, pos)
        if body is not None and decode(body, probe=True):
            return pos
        start = pos + 1


def _key(raw):
    """A spectrum key read from a journal, checked to be (str, "G"|"A"|"D", None|str, None|int)."""
    layer, quantity, group, position = raw
    if not (isinstance(layer, str) and quantity in ("G", "A", "D") and (group is None or isinstance(group, str))
            and (position is None or (type(position) is int and position >= 0))):
        raise ValueError(f"not a spectrum key: {raw!r}")
    return (layer, quantity, group, position)


class _Decoder:
    """Turns frame bodies into events; returns None for a body that does not decode."""

    def __init__(self, version):
        self.version = version
        self._keys = {}  # keys blob -> list of key tuples (v2); key id -> key (v1)

    def __call__(self, body, probe=False):
        try:
            (hlen,) = _U32.unpack_from(body, 0)
            head = json.loads(bytes(body[4: 4 + hlen]))
            if probe:
                return True
            kind = head["t"]
            if kind == "groups":
                return ("groups", np.asarray(head["v"], dtype=str))
            if kind == "meta":
                return ("meta", dict(head["v"]))
            if self.version == 1:
                return self._step_v1(head, body, 4 + hlen)
            (klen,) = _U32.unpack_from(body, 4 + hlen)
            at = 8 + hlen
            keys = self._key_list(bytes(body[at: at + klen]))
            return self._step(head, keys, body, at + klen)
        except (KeyError, ValueError, TypeError, IndexError, struct.error, zlib.error):
            return None

    def _key_list(self, blob):
        keys = self._keys.get(blob)
        if keys is None:
            inflate = zlib.decompressobj()
            text = inflate.decompress(blob, _MAX_KEYS_BYTES)
            if inflate.unconsumed_tail or not inflate.eof:
                raise ValueError("the key list is damaged or implausibly large")
            keys = self._keys[blob] = [_key(k) for k in json.loads(text)]
        return keys

    def _step(self, head, keys, body, offset):
        lengths = head["k"]
        if len(lengths) != len(keys):
            raise ValueError("key list and lengths differ")
        shapes = head.get("p", [])
        n_floats = sum(lengths) + (len(keys) if head.get("f") else 0) + sum(n * k for _, n, k in shapes)
        floats = np.frombuffer(body, dtype="<f8", count=n_floats, offset=offset)
        offset += 8 * n_floats
        spectra, at = [], 0
        for key, length in zip(keys, lengths):
            spectra.append((key, floats[at: at + length]))
            at += length
        floors = {}
        if head.get("f"):
            floors = {key: float(v) for key, v in zip(keys, floats[at: at + len(keys)]) if not np.isnan(v)}
            at += len(keys)
        per_sample = []
        for layer, n, k in shapes:
            per_sample.append((layer, floats[at: at + n * k].reshape(n, k)))
            at += n * k
        ids = None
        if "n" in head:
            ids = np.frombuffer(body, dtype="<i8", count=head["n"], offset=offset).astype(np.int64)
            offset += 8 * head["n"]
        groups = None
        if "g" in head:
            dtype = np.dtype(head["gd"])
            codes = np.frombuffer(body, dtype=dtype, count=(len(body) - offset) // dtype.itemsize, offset=offset)
            offset += codes.nbytes
            groups = np.asarray(head["g"], dtype=str)[codes]
        if offset != len(body):
            raise ValueError("the payload does not match its description")
        return self._step_data(head, spectra, floors, per_sample, groups, ids)

    @staticmethod
    def _step_data(head, spectra, floors, per_sample, groups, ids):
        loss = np.nan if head["l"] is None else float(head["l"])
        extra = {str(k): float(v) for k, v in dict(head["x"]).items()}
        return StepData(int(head["i"]), int(head["s"]), loss, extra, spectra, floors, per_sample, groups, ids)

    def _step_v1(self, head, body, offset):
        payload = np.frombuffer(body, dtype="<f8", offset=offset)
        for kid, layer, quantity, group, position in head["d"]:
            self._keys[kid] = _key((layer, quantity, group, position))
        spectra, at = [], 0
        for kid, length in head["k"]:
            spectra.append((self._keys[kid], payload[at: at + length]))
            at += length
        per_sample = []
        for layer, n, k in head["p"]:
            per_sample.append((layer, payload[at: at + n * k].reshape(n, k)))
            at += n * k
        if at != payload.size:
            raise ValueError("the payload does not match its description")
        return self._step_data(head, spectra, {}, per_sample, None, None)
