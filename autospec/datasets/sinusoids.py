"""Noisy sinusoid sequences whose class is a frequency band."""
import numpy as np

from ._dataset import Dataset
from ._errors import DatasetError, DatasetTypeError
from ._validate import balanced_labels, check_float, check_int, make_rng


def make_sinusoids(n=200, length=64, n_classes=4, seed=0, *, freq_range=(0.02, 0.24),
                   noise=0.1, amplitude_jitter=0.2, band_fill=0.6):
    """Sequences X of shape (n, length, 1): sines whose frequency band is the class.

    ``freq_range`` (cycles per time step, below the Nyquist 0.5) is cut into ``n_classes``
    equal bands; a sample of class k draws its frequency uniformly from the central
    ``band_fill`` fraction of band k (so neighbouring classes are separated by a gap), its phase
    uniformly in [0, 2 pi) and its amplitude uniformly in 1 +- ``amplitude_jitter``, plus white
    Gaussian noise of std ``noise``. y is the band index; groups are "band0", "band1", ...
    """
    n = check_int("n", n)
    length = check_int("length", length, minimum=2)
    n_classes = check_int("n_classes", n_classes, minimum=1)
    noise = check_float("noise", noise, minimum=0.0)
    amplitude_jitter = check_float("amplitude_jitter", amplitude_jitter, minimum=0.0, maximum=1.0)
    band_fill = check_float("band_fill", band_fill, minimum=0.0, maximum=1.0)
    try:
        f_lo, f_hi = (float(f) for f in freq_range)
    except (TypeError, ValueError):
        raise DatasetTypeError(f"freq_range must be a pair (low, high), got {freq_range!r}") from None
    if not 0.0 <= f_lo < f_hi <= 0.5:
        raise DatasetError(f"freq_range must satisfy 0 <= low < high <= 0.5 cycles/step "
                           f"(Nyquist), got {freq_range!r}")
    rng = make_rng(seed)

    y = balanced_labels(n, n_classes, rng)
    edges = np.linspace(f_lo, f_hi, n_classes + 1)
    width = edges[1] - edges[0]
    centers = edges[:-1] + width / 2
    frequency = centers[y] + (rng.random(n) - 0.5) * band_fill * width
    phase = rng.uniform(0.0, 2 * np.pi, n)
    amplitude = 1.0 + rng.uniform(-amplitude_jitter, amplitude_jitter, n)
    t = np.arange(length)
    X = amplitude[:, None] * np.sin(2 * np.pi * frequency[:, None] * t + phase[:, None])
    X = X + noise * rng.standard_normal((n, length))

    class_names = [f"band{k}" for k in range(n_classes)]
    meta = {
        "class_names": class_names,
        "bands": [(float(a), float(b)) for a, b in zip(edges[:-1], edges[1:])],
        "frequency": frequency, "phase": phase, "amplitude": amplitude,
        "sample_keys": ("frequency", "phase", "amplitude"),
        "params": {"n": n, "length": length, "n_classes": n_classes, "seed": seed,
                   "freq_range": (f_lo, f_hi), "noise": noise,
                   "amplitude_jitter": amplitude_jitter, "band_fill": band_fill},
    }
    return Dataset(X[:, :, None], y, np.asarray(class_names)[y], "sinusoids", meta)
