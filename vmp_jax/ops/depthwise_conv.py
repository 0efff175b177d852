"""3-D depthwise convolution, channels-last, in the formulation that is fast on the current backend.

XLA:CPU lowers `lax.conv_general_dilated(..., feature_group_count=C)` to a generic grouped-conv loop that is ~100x
slower than PyTorch for X3D's 3x3x3 depthwise convs; the same conv written as kt*kh*kw shifted multiply-adds is a
single fused elementwise loop. On GPU/TPU the vendor grouped conv (cuDNN / TPU conv units) is the default choice.
That GPU default is *not* measured here (no GPU was available when this was written); override it with the
`impl` argument or the environment variable `VMP_DEPTHWISE_IMPL` (`shifted` | `lax` | `auto`). With 'auto' and no
override the choice is made per platform when the program is lowered (`lax.platform_dependent`), so a program
exported for several platforms carries the right form for each.

The shifted form has a custom VJP: the input gradient is the same shifted form applied to the stride-dilated
cotangent with the flipped kernel, and the kernel gradient reduces all taps in a scan over output frames (cache
friendly). On (4, 13, 40, 40, 108) with a 2-core CPU: forward 0.05-0.07 s, forward+backward 0.25 s, against
0.54 s for autodiff of the shifted form (see benchmarks/x3d.py for the figures against PyTorch).

Padding follows PyTorch's symmetric `padding = k // 2` on each side, so for odd kernels and stride 1 the output
has the input's size, and for stride 2 the output is ceil(n / 2) as in PyTorch.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

IMPLS = ("auto", "shifted", "lax")
_ENV_VAR = "VMP_DEPTHWISE_IMPL"


def default_impl(backend: str | None = None) -> str:
    """What `impl='auto'` resolves to: env `VMP_DEPTHWISE_IMPL` if set, else 'shifted' on CPU, 'lax' elsewhere."""
    env = os.environ.get(_ENV_VAR, "auto")
    if env not in IMPLS:
        raise ValueError(f"{_ENV_VAR}={env!r}; expected one of {IMPLS}")
    if env != "auto":
        return env
    backend = backend or jax.default_backend()
    return "shifted" if backend == "cpu" else "lax"


def _out_size(n: int, k: int, s: int) -> int:
    return (n + 2 * (k // 2) - k) // s + 1


def _check(x: jax.Array, kernel: jax.Array, strides: Sequence[int]) -> tuple[int, int, int]:
    if x.ndim != 5:
        raise ValueError(f"x has shape {x.shape}; expected (B, T, H, W, C)")
    if kernel.ndim != 4 or kernel.shape[-1] != x.shape[-1]:
        raise ValueError(f"kernel has shape {kernel.shape}; expected (kt, kh, kw, C) with C = {x.shape[-1]}")
    strides = tuple(int(s) for s in strides)
    if len(strides) != 3 or min(strides) < 1:
        raise ValueError(f"strides={strides}; expected three positive ints (st, sh, sw)")
    for n, k, s in zip(x.shape[1:4], kernel.shape[:3], strides):
        if _out_size(n, k, s) < 1:
            raise ValueError(f"input extent {n} is too small for kernel {k} with stride {s}")
    return strides


def _shifted_forward(x, kernel, strides):
    """Sum over kernel taps of a strided window of the padded input times that tap's per-channel weight."""
    kt, kh, kw, _ = kernel.shape
    b, t, h, w, c = x.shape
    out = [_out_size(n, k, s) for n, k, s in zip((t, h, w), (kt, kh, kw), strides)]
    pads = [(0, 0)] + [(k // 2, k // 2) for k in (kt, kh, kw)] + [(0, 0)]
    # Low-precision inputs accumulate in float32: 27 bf16 roundings would cost ~2 bits.
    acc_dtype = jnp.promote_types(x.dtype, jnp.float32)
    xp = jnp.pad(x, pads).astype(acc_dtype)
    kernel = kernel.astype(acc_dtype)
    acc = None
    for i in range(kt):
        for j in range(kh):
            for k in range(kw):
                start = (0, i, j, k, 0)
                limit = (
                    b,
                    i + (out[0] - 1) * strides[0] + 1,
                    j + (out[1] - 1) * strides[1] + 1,
                    k + (out[2] - 1) * strides[2] + 1,
                    c,
                )
                term = lax.slice(xp, start, limit, (1, *strides, 1)) * kernel[i, j, k]
                acc = term if acc is None else acc + term
    return acc.astype(x.dtype)


def _lax_forward(x, kernel, strides):
    pads = [(k // 2, k // 2) for k in kernel.shape[:3]]
    return lax.conv_general_dilated(
        x,
        kernel[:, :, :, None, :].astype(x.dtype),
        window_strides=strides,
        padding=pads,
        dimension_numbers=("NDHWC", "DHWIO", "NDHWC"),
        feature_group_count=x.shape[-1],
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _shifted(x, kernel, strides):
    return _shifted_forward(x, kernel, strides)


def _shifted_fwd(x, kernel, strides):
    return _shifted_forward(x, kernel, strides), (x, kernel)


def _shifted_bwd(strides, res, g):
    """Input grad = the transposed conv (g dilated by the stride, flipped kernel); kernel grad = per-tap reductions."""
    x, kernel = res
    kt, kh, kw, _ = kernel.shape
    b, t, h, w, c = x.shape
    # Dilate g by the stride and pad so that a stride-1 'valid' correlation with the flipped kernel gives dx.
    pads = [(0, 0, 0)]
    for n, k, s, o in zip((t, h, w), (kt, kh, kw), strides, g.shape[1:4]):
        p = k // 2
        lo = k - 1 - p
        hi = n + k - 1 - lo - ((o - 1) * s + 1)
        pads.append((lo, hi, s - 1))
    pads.append((0, 0, 0))
    acc_dtype = jnp.promote_types(x.dtype, jnp.float32)
    gp = lax.pad(g.astype(acc_dtype), jnp.zeros((), acc_dtype), pads)
    flipped = kernel[::-1, ::-1, ::-1].astype(acc_dtype)
    dx = None
    for i in range(kt):
        for j in range(kh):
            for k in range(kw):
                term = lax.slice(gp, (0, i, j, k, 0), (b, i + t, j + h, k + w, c)) * flipped[i, j, k]
                dx = term if dx is None else dx + term
    dk = _kernel_grad(x.astype(acc_dtype), g.astype(acc_dtype), kernel.shape, strides)
    return dx.astype(x.dtype), dk.astype(kernel.dtype)


def _kernel_grad(x, g, kernel_shape, strides):
    """dk[i, j, l, c] = sum over (b, t, h, w) of window(i, j, l) of the padded x times g.

    A scan over output frames keeps the kt input frames and one gradient frame in cache while all taps are reduced;
    27 whole-tensor reductions instead are memory-bound and measured 1.6x slower on a 2-core CPU.
    """
    kt, kh, kw, c = kernel_shape
    b = x.shape[0]
    to, ho, wo = g.shape[1:4]
    xp = jnp.pad(x, [(0, 0)] + [(k // 2, k // 2) for k in (kt, kh, kw)] + [(0, 0)])
    xs = jnp.moveaxis(xp, 1, 0)
    gs = jnp.moveaxis(g, 1, 0)
    sh, sw = strides[1], strides[2]

    def body(acc, t):
        frames = lax.dynamic_slice_in_dim(xs, t * strides[0], kt, 0)
        gt = gs[t]
        taps = []
        for i in range(kt):
            for j in range(kh):
                for k in range(kw):
                    win = lax.slice(
                        frames[i], (0, j, k, 0), (b, j + (ho - 1) * sh + 1, k + (wo - 1) * sw + 1, c), (1, sh, sw, 1)
                    )
                    taps.append(jnp.sum(win * gt, axis=(0, 1, 2)))
        return acc + jnp.stack(taps), None

    # zeros_like(g) (not zeros): inside shard_map the carry must vary over the same mesh axes as g.
    init = jnp.zeros_like(g, x.dtype, shape=(kt * kh * kw, c))
    acc, _ = lax.scan(body, init, jnp.arange(to))
    return acc.reshape(kernel_shape)


_shifted.defvjp(_shifted_fwd, _shifted_bwd)


def depthwise_conv3d(
    x: jax.Array, kernel: jax.Array, strides: Sequence[int] = (1, 1, 1), impl: str = "auto"
) -> jax.Array:
    """Depthwise 3-D conv with PyTorch padding k//2. x: (B, T, H, W, C), kernel: (kt, kh, kw, C) -> (B, T', H', W', C).

    `impl`: 'shifted' (multiply-adds of shifted windows, custom gradient), 'lax' (grouped `conv_general_dilated`)
    or 'auto' (see `default_impl`). Both give the same values and gradients up to float rounding.
    """
    if impl not in IMPLS:
        raise ValueError(f"impl={impl!r}; expected one of {IMPLS}")
    strides = _check(x, kernel, strides)
    if impl == "auto" and os.environ.get(_ENV_VAR, "auto") == "auto":
        # Chosen when the program is lowered, per platform: a jax.export artifact lowered for several platforms on
        # a CPU machine still runs the vendor conv on GPU/TPU, and the shifted form on CPU.
        return lax.platform_dependent(
            x,
            kernel,
            cpu=functools.partial(_shifted_path, strides=strides),
            default=functools.partial(_lax_forward, strides=strides),
        )
    if impl == "auto":
        impl = default_impl()
    if impl == "lax":
        return _lax_forward(x, kernel, strides)
    return _shifted_path(x, kernel, strides)


def _shifted_path(x, kernel, strides):
    # Inside shard_map a replicated kernel meets per-device activations. Giving the kernel the activations'
    # varying mesh axes up front (adding zeros shaped like it) lets autodiff sum the custom per-device kernel
    # gradient over those axes, as it does for built-in ops; outside shard_map this adds zeros.
    kernel = kernel + jnp.zeros_like(x, kernel.dtype, shape=kernel.shape)
    return _shifted(x, kernel, strides)
