"""The noise floor: the level below which singular values are numerically zero, from the
data's dtype and the scale of the matrix (:func:`noise_floor_from` gives the argument), and
cheap estimates of that scale (sigma_1) by power steps.
"""
import math
import numbers

import numpy as np

from minigrad.backend import get_array_module

from .linalg_checks import EPS64, GRADIENT_METHODS, SVDVALS_METHODS, as_float_array, check_finite, check_method

def data_eps(dtype):
    """Machine epsilon of data stored as ``dtype``: its own for floats (float16, float32,
    float64), float64's for integers and booleans (exact data, float64 arithmetic)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return float(np.finfo(dtype).eps)
    if dtype.kind in "iub":
        return EPS64
    raise TypeError(f"noise floor: dtype must be a real float or integer dtype, got {dtype}")


def coarser_dtype(*dtypes):
    """The dtype with the largest machine epsilon (the data's resolution when they are mixed)."""
    return max((np.dtype(d) for d in dtypes), key=data_eps)


def noise_floor_from(sigma_max, shape, dtype, *, method="exact"):
    """The level below which singular values are numerically zero, from the numbers it rests on.

    sigma_max: the scale of the matrix's rounding error -- its largest singular value, or, for
    G = A^T D formed or factored from factors A, D, sigma_1(A) * sigma_1(D) (see below).
    shape: (m, n) of the matrix whose values are judged. dtype: the dtype of its data (for G,
    the coarser of A's and D's). method: the route the values came from; only "gram" changes
    the floor. NaN ``sigma_max`` (a step with non-finite factors) gives NaN.

    The rule (DESIGN.md, "Noise floor"; the default tolerance of numpy.linalg.matrix_rank and
    MATLAB's rank)::

        floor = max(m, n) * eps(dtype) * sigma_max

    Why: rounding each entry of X to ``dtype`` moves it by E with ||E||_2 <= ||E||_F <=
    eps ||X||_F <= eps sqrt(min(m, n)) sigma_1(X), and by Weyl's inequality no singular value
    moves by more than ||E||_2; so a matrix of rank r stored in ``dtype`` may show values up
    to that size past index r. max(m, n) >= sqrt(min(m, n)) leaves room for the rounding of
    the computation that produced X. Float32 data keep float32's eps even though the values
    are computed and stored in float64: the data cannot resolve more.

    G from factors: rounding in A^T D (in any route: the product, the QR factors, the top-k
    products) is relative to ||A|| ||D||, not to sigma_1(G): dG = dA^T D + A^T dD has
    ||dG|| <= 2 eps ||A||_F ||D||_F <= 2 sqrt(rank A rank D) eps sigma_1(A) sigma_1(D), and
    the rank of each factor is at most max(in, out). When G is small through cancellation
    (per-sample gradients that nearly sum to zero), sigma_1(G) is far below sigma_1(A)
    sigma_1(D) and a floor relative to sigma_1(G) would count rounding noise as signal. So
    for G pass sigma_max = sigma_1(A) sigma_1(D) (:func:`gradient_noise_floor` does).

    The "gram" route squares the condition number: eigenvalues of the Gram matrix carry an
    absolute error of about max(m, n) eps64 sigma_max^2 (it is always formed in float64), so
    a zero singular value comes out as up to sqrt(max(m, n) eps64) sigma_max; its floor is
    the larger of that and the rule above. For float32 data the rule above is always the
    larger (max(m, n) eps32 >= sqrt(max(m, n) eps64) for every size), which is why "auto"
    may choose the Gram route for float32 at no loss; for float64 data (only with an
    explicit method="gram") the Gram term rules: about 1.5e-8 sqrt(max(m, n)) sigma_max.
    The other routes (exact SVD, factored, top-k with its rounding-level stopping rule)
    add errors below the rule's level.
    """
    if isinstance(sigma_max, (bool, np.bool_)) or not isinstance(sigma_max, numbers.Real):
        raise TypeError(f"noise_floor_from: sigma_max must be a real number, got {sigma_max!r}")
    sigma_max = float(sigma_max)
    if math.isnan(sigma_max):
        return math.nan
    if sigma_max < 0 or math.isinf(sigma_max):
        raise ValueError(f"noise_floor_from: sigma_max must be finite and >= 0, got {sigma_max}")
    if len(shape) != 2 or any(isinstance(d, (bool, np.bool_)) or not isinstance(d, numbers.Integral) or d < 0
                              for d in shape):
        raise ValueError(f"noise_floor_from: shape must be two sizes (m, n) >= 0, got {tuple(shape)!r}")
    check_method(method, SVDVALS_METHODS + GRADIENT_METHODS, "noise_floor_from")
    size = max(int(shape[0]), int(shape[1]))
    floor = size * data_eps(dtype) * sigma_max
    if method == "gram":
        floor = max(floor, math.sqrt(size * EPS64) * sigma_max)
    return floor


def largest_svdval_estimate(X, iters=4, seed=0):
    """A cheap estimate of sigma_1(X) from below (float): ``iters`` power steps on X^T X from a
    seeded random vector, two products with one vector each. For a random start the estimate
    is within a factor ~max(m, n)^(1 / (4 iters + 2)) of sigma_1 (1.5 for 784 columns and 4
    steps) and usually within a few percent: enough to scale a noise floor."""
    X, xp = as_float_array(X, "X")
    if X.ndim != 2:
        raise ValueError(f"largest_svdval_estimate: X must be a 2-D array, got shape {tuple(X.shape)}")
    if X.size == 0:
        return 0.0
    check_finite(X, "X", "largest_svdval_estimate")
    _, v = power_steps(X, random_unit_vector(X.shape[1], X.dtype, xp, seed), iters)
    return float(xp.linalg.norm(X @ v))


def random_unit_vector(n, dtype, xp=np, seed=0):
    """A seeded random unit vector of length n (a start for :func:`power_steps`)."""
    v = xp.asarray(np.random.default_rng(seed).standard_normal(n), dtype=dtype)
    return v / xp.linalg.norm(v)


def power_steps(X, v, iters=1):
    """(|X v| for the last v used, the next unit vector): ``iters`` power steps on X^T X from the
    unit vector v, alternating X v and X^T u (never X^T X, so nothing overflows); X finite.

    |X v| <= sigma_1(X) for any unit v. Handing the returned vector to the next call on a matrix
    that changes little (the same layer one training step later) starts near the top right
    singular vector, so one step then estimates sigma_1 closely: a warm start."""
    xp = get_array_module(X)
    estimate = 0.0
    for _ in range(iters):
        u = X @ v
        estimate = float(xp.linalg.norm(u))
        if estimate == 0.0:
            return 0.0, v
        w = X.T @ (u / estimate)  # nonzero: v . w = |u| > 0
        v = w / xp.linalg.norm(w)
    return estimate, v

