"""Convolution layers Conv1d/2d/3d and ConvTranspose1d/2d/3d (PyTorch layouts and default inits).

Their weights hand out per-position factors through ``capture_factors``: for Conv,
A (N, P_out, c_in * prod(k)) and D (N, P_out, c_out) with
``factors[name].gradient() == weight.grad.reshape(c_out, -1)``; for ConvTranspose,
A (N, P_in, c_in) and D (N, P_in, c_out * prod(k)) with
``factors[name].gradient().T.reshape(weight.shape) == weight.grad`` (see minigrad/ops/conv.py).
"""
import math
import numbers

from . import init
from .module import Module, new_parameter
from ..ops.conv import conv, conv_transpose
from ..ops.im2col import as_tuple


class _ConvNd(Module):
    """Shared construction: checks, weight (out-or-in, in-or-out, *kernel) and bias with PyTorch's init."""

    transposed = False
    dims = 0

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                 padding_mode, device, dtype, generator):
        super().__init__()
        name = type(self).__name__
        for label, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name}: {label} must be a positive int, got {value!r}")
        if groups != 1:
            raise ValueError(f"{name}: groups={groups!r} is not supported, only groups=1")
        if padding_mode != "zeros":
            raise ValueError(f"{name}: padding_mode={padding_mode!r} is not supported, only 'zeros'")
        d = self.dims
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = as_tuple(kernel_size, d, "kernel_size", minimum=1)
        self.stride = as_tuple(stride, d, "stride", minimum=1)
        self.dilation = as_tuple(dilation, d, "dilation", minimum=1)
        self.padding = padding  # normalized by the subclass
        self.groups = 1
        shape = ((in_channels, out_channels) if self.transposed else (out_channels, in_channels)) + self.kernel_size
        # PyTorch: kaiming_uniform_(a=sqrt(5)) with fan_in = weight.shape[1] * prod(kernel), also for transposed
        fan_in = shape[1] * math.prod(self.kernel_size)
        self.weight = new_parameter(init.kaiming_uniform(shape, generator=generator), dtype, device)
        self.register_parameter(
            "bias", new_parameter(init.bias_uniform((out_channels,), fan_in, generator), dtype, device)
            if bias else None)

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}")
        if self.padding not in (0, (0,) * self.dims):
            s += f", padding={self.padding}"
        if getattr(self, "output_padding", (0,) * self.dims) != (0,) * self.dims:
            s += f", output_padding={self.output_padding}"
        if self.dilation != (1,) * self.dims:
            s += f", dilation={self.dilation}"
        return s + ("" if self.bias is not None else ", bias=False")


class _Conv(_ConvNd):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None, generator=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype, generator)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{type(self).__name__}: padding must be an int, a tuple, 'valid' or 'same', "
                                 f"got {padding!r}")
            if padding == "same" and self.stride != (1,) * self.dims:
                raise ValueError(f"{type(self).__name__}: padding='same' needs stride 1, got {self.stride}")
        else:
            self.padding = as_tuple(padding, self.dims, "padding")

    def forward(self, x):
        return conv(x, self.weight, self.bias, self.stride, self.padding, self.dilation)


class _ConvTranspose(_ConvNd):
    transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None, generator=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype, generator)
        self.padding = as_tuple(padding, self.dims, "padding")
        self.output_padding = as_tuple(output_padding, self.dims, "output_padding")
        if any(op >= max(s, dl) for op, s, dl in zip(self.output_padding, self.stride, self.dilation)):
            raise ValueError(f"{type(self).__name__}: output_padding {self.output_padding} must be smaller than "
                             f"stride {self.stride} or dilation {self.dilation} in every dimension")

    def forward(self, x):
        return conv_transpose(x, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                              1, self.dilation)


class Conv1d(_Conv):
    """1-D convolution over (N, C, L); weight (c_out, c_in, k)."""
    dims = 1


class Conv2d(_Conv):
    """2-D convolution over (N, C, H, W); weight (c_out, c_in, kh, kw)."""
    dims = 2


class Conv3d(_Conv):
    """3-D convolution over (N, C, D, H, W); weight (c_out, c_in, kd, kh, kw)."""
    dims = 3


class ConvTranspose1d(_ConvTranspose):
    """1-D transposed convolution over (N, C, L); weight (c_in, c_out, k)."""
    dims = 1


class ConvTranspose2d(_ConvTranspose):
    """2-D transposed convolution over (N, C, H, W); weight (c_in, c_out, kh, kw)."""
    dims = 2


class ConvTranspose3d(_ConvTranspose):
    """3-D transposed convolution over (N, C, D, H, W); weight (c_in, c_out, kd, kh, kw)."""
    dims = 3
