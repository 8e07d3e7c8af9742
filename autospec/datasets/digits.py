"""Handwritten digits: scikit-learn's bundled 8x8 digits (the offline MNIST stand-in) and
MNIST IDX files."""
import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from ._dataset import Dataset
from ._errors import DataFileNotFoundError, DatasetError
from ._validate import check_int, make_rng

_N_BUNDLED = 1797

# IDX data type codes (third magic byte) -> big-endian dtype.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def load_digits(n=None, image_size=8, flatten=True, seed=0):
    """scikit-learn's 1797 handwritten 8x8 digits, pixels scaled to [0, 1].

    ``n``: a class-balanced random subset of that many images (``seed`` picks it), or None for all.
    ``image_size``: side length; values other than 8 resample bilinearly (28 mimics MNIST).
    ``flatten``: X of shape (N, image_size**2) for MLPs, else (N, 1, image_size, image_size) for CNNs.
    Groups are the digit names "0".."9".
    """
    from scipy import ndimage
    from sklearn.datasets import load_digits as sklearn_digits

    image_size = check_int("image_size", image_size, minimum=2)
    rng = make_rng(seed)
    bunch = sklearn_digits()
    images = bunch.images / 16.0
    labels = bunch.target.astype(np.int64)
    index = np.arange(len(labels))
    if n is not None:
        n = check_int("n", n, minimum=1)
        if n > len(labels):
            raise DatasetError(f"n must be <= {len(labels)} (the bundled digits), got {n}")
        index = np.sort(_balanced_subset(labels, n, rng))
        images, labels = images[index], labels[index]
    if image_size != images.shape[-1]:
        factor = image_size / images.shape[-1]
        images = ndimage.zoom(images, (1, factor, factor), order=1, grid_mode=True,
                              mode="grid-constant")
        images = np.clip(images, 0.0, 1.0)
    X = images.reshape(len(labels), -1) if flatten else images[:, None]
    meta = {
        "source": "sklearn.datasets.load_digits (UCI optical recognition of handwritten digits)",
        "image_size": image_size, "class_names": [str(k) for k in range(10)],
        "index": index, "sample_keys": ("index",), "seed": seed,
    }
    return Dataset(X, labels, labels.astype(str), "digits", meta)


def _balanced_subset(labels, n, rng):
    """Indices of ``n`` samples taking classes in turn (each class in random order)."""
    order = rng.permutation(len(labels))
    rank = np.empty(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        members = order[labels[order] == label]
        rank[members] = np.arange(len(members))
    # Sort by rank within class, then by the random order: round robin over classes.
    position = np.empty(len(labels), dtype=np.int64)
    position[order] = np.arange(len(labels))
    picked = np.lexsort((position, rank))[:n]
    return picked


def load_mnist_idx(images_path, labels_path, *, flatten=False, n=None):
    """MNIST-format IDX files (optionally gzip-compressed): images (N, 1, H, W) in [0, 1] or flat.

    The images file must be unsigned bytes with 3 dimensions (magic 0x00000803), the labels
    file integers with 1 dimension (magic 0x00000801); counts must agree. ``n`` keeps the
    first ``n`` samples.
    """
    images = read_idx(images_path, ndim=3, what="IDX images file")
    labels = read_idx(labels_path, ndim=1, what="IDX labels file")
    if images.dtype != np.uint8:
        raise DatasetError(f"{images_path}: expected unsigned byte pixels (magic 0x00000803), "
                           f"got IDX dtype {images.dtype}")
    if labels.dtype.kind not in "iu":
        raise DatasetError(f"{labels_path}: expected integer labels, got IDX dtype {labels.dtype}")
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
                           f"{labels.shape[0]} labels")
    if images.shape[0] == 0:
        raise DatasetError(f"{images_path}: the IDX file holds no images")
    if labels.min() < 0:
        raise DatasetError(f"{labels_path}: labels must be >= 0, found {labels.min()}")
    if n is not None:
        n = check_int("n", n, minimum=1)
        images, labels = images[:n], labels[:n]
    X = images.astype(np.float32) / 255.0
    X = X.reshape(len(X), -1) if flatten else X[:, None]
    labels = labels.astype(np.int64)
    meta = {"source": "MNIST IDX files", "images_path": str(images_path),
            "labels_path": str(labels_path), "image_size": tuple(images.shape[1:]),
            "class_names": [str(k) for k in np.unique(labels)]}
    return Dataset(X, labels, labels.astype(str), "mnist", meta)


def read_idx(path, ndim=None, what="IDX file"):
    """The array in an IDX file (gzip detected by content), with its header fully checked."""
    path = Path(path)
    if not path.is_file():
        raise DataFileNotFoundError(f"{what} not found: {path}")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise DatasetError(f"{path}: corrupt or truncated gzip data ({exc})") from None
    if len(raw) < 4:
        raise DatasetError(f"{path}: {len(raw)} bytes is too short for the 4-byte IDX magic number")
    magic = int.from_bytes(raw[:4], "big")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DatasetError(f"{path}: bad IDX magic number 0x{magic:08x}; expected 0x0000TTDD with "
                           f"type TT in {{08, 09, 0B, 0C, 0D, 0E}} (MNIST images 0x00000803, "
                           f"labels 0x00000801)")
    dtype, file_ndim = np.dtype(_IDX_TYPES[raw[2]]), raw[3]
    if ndim is not None and file_ndim != ndim:
        raise DatasetError(f"{path}: magic 0x{magic:08x} says {file_ndim} dimension(s), but the "
                           f"{what} needs {ndim}")
    header = 4 + 4 * file_ndim
    if len(raw) < header:
        raise DatasetError(f"{path}: truncated header: {file_ndim} dimensions need {header} bytes, "
                           f"file has {len(raw)}")
    dims = struct.unpack(f">{file_ndim}I", raw[4:header])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    have = len(raw) - header
    if have < expected:
        raise DatasetError(f"{path}: truncated data: dimensions {dims} need {expected} bytes, "
                           f"file has {have}")
    if have > expected:
        raise DatasetError(f"{path}: {have - expected} unexpected bytes after the data of "
                           f"dimensions {dims}")
    data = np.frombuffer(raw, dtype=dtype, count=expected // dtype.itemsize, offset=header)
    return data.reshape(dims).astype(dtype.newbyteorder("="))
