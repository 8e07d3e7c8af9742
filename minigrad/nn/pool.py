"""Pooling and upsampling layers: MaxPool1d/2d/3d, AvgPool1d/2d/3d, Upsample (nearest)."""
from .module import Module
from ..ops import pool as P
from ..ops.im2col import as_tuple


class _Pool(Module):
    dims = 0

    def __init__(self, kernel_size, stride, padding, dilation=1):
        super().__init__()
        d = self.dims
        self.kernel_size = as_tuple(kernel_size, d, "kernel_size", minimum=1)
        self.stride = self.kernel_size if stride is None else as_tuple(stride, d, "stride", minimum=1)
        self.padding = as_tuple(padding, d, "padding")
        self.dilation = as_tuple(dilation, d, "dilation", minimum=1)
        if any(2 * p > dl * (k - 1) + 1 for p, k, dl in zip(self.padding, self.kernel_size, self.dilation)):
            raise ValueError(f"{type(self).__name__}: padding {self.padding} must be at most half the (dilated) "
                             f"kernel size {self.kernel_size}")

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class _MaxPool(_Pool):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1):
        super().__init__(kernel_size, stride, padding, dilation)

    def forward(self, x):
        return P.max_pool(x, self.kernel_size, self.stride, self.padding, self.dilation, dims=self.dims)


class _AvgPool(_Pool):
    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad=True):
        super().__init__(kernel_size, stride, padding)
        self.count_include_pad = bool(count_include_pad)

    def forward(self, x):
        return P.avg_pool(x, self.kernel_size, self.stride, self.padding, self.count_include_pad, dims=self.dims)


class MaxPool1d(_MaxPool):
    """Max over windows of (N, C, L); stride defaults to kernel_size (PyTorch semantics, floor mode)."""
    dims = 1


class MaxPool2d(_MaxPool):
    """Max over windows of (N, C, H, W); stride defaults to kernel_size (PyTorch semantics, floor mode)."""
    dims = 2


class MaxPool3d(_MaxPool):
    """Max over windows of (N, C, D, H, W); stride defaults to kernel_size (PyTorch semantics, floor mode)."""
    dims = 3


class AvgPool1d(_AvgPool):
    """Mean over windows of (N, C, L); stride defaults to kernel_size (PyTorch semantics, floor mode)."""
    dims = 1


class AvgPool2d(_AvgPool):
    """Mean over windows of (N, C, H, W); stride defaults to kernel_size (PyTorch semantics, floor mode)."""
    dims = 2


class AvgPool3d(_AvgPool):
    """Mean over windows of (N, C, D, H, W); stride defaults to kernel_size (PyTorch semantics, floor mode)."""
    dims = 3


class Upsample(Module):
    """Nearest-neighbour upsampling of (N, C, *S), 1 to 3 spatial axes, by integer factors.

    Give ``scale_factor`` (int or one per axis) or ``size`` (an integer multiple of the input size).
    """

    def __init__(self, size=None, scale_factor=None, mode="nearest"):
        super().__init__()
        if mode != "nearest":
            raise ValueError(f"Upsample: mode={mode!r} is not supported, only 'nearest'")
        if (size is None) == (scale_factor is None):
            raise ValueError("Upsample needs exactly one of size and scale_factor")
        if scale_factor is not None:  # check the values now; their number is checked against the input
            P.integer_scales(scale_factor, len(scale_factor) if isinstance(scale_factor, (tuple, list)) else 1)
        self.size, self.scale_factor, self.mode = size, scale_factor, mode

    def forward(self, x):
        scale = self.scale_factor
        if self.size is not None:
            d = x.ndim - 2
            size = (self.size,) * d if isinstance(self.size, int) else tuple(self.size)
            if d < 1 or len(size) != d or any(s % n for s, n in zip(size, x.shape[2:])):
                raise ValueError(f"Upsample: size {self.size} must be an integer multiple of the input's spatial "
                                 f"size {x.shape[2:]} for nearest upsampling")
            scale = tuple(s // n for s, n in zip(size, x.shape[2:]))
        return P.upsample_nearest(x, scale)

    def extra_repr(self):
        what = f"size={self.size}" if self.size is not None else f"scale_factor={self.scale_factor}"
        return f"{what}, mode={self.mode!r}"
