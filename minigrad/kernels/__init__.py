"""The kernels layer: the fast primitives the reference ops call, chosen in one place.

Ops in ``minigrad/ops`` read as the maths and call a few primitives from here.
Each primitive is a :class:`~minigrad.kernels.dispatch.Kernel`: its reference
implementation (plain NumPy/CuPy) and an optional fast one (threads, layouts,
fused bias, buffer reuse). ``use_kernels("reference" | "fast")`` switches all of
them at once; ``MINIGRAD_KERNELS`` sets the start value. ``threads`` owns how many
threads BLAS and minigrad's own pool use.
"""
from .dispatch import PATHS, Kernel, active_kernels, kernel, use_kernels  # noqa: F401
from .threads import get_num_threads, set_num_threads  # noqa: F401
