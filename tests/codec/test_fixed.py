"""codec/fixed.py: the integer decoder networks equal an int64 reference exactly (so summation order cannot change
them) and agree with the float operations they stand for."""
from __future__ import annotations

import numpy as np
import pytest

from codec import fixed


def _activations(rng, shape, scale=2.0):
    return np.round(rng.normal(0, scale, shape) * (1 << fixed.FA))  # integer-valued float64 at scale 2**FA


def _float_conv(x, kernel, bias):
    """'same' stride-1 convolution in float64, the operation conv3x3 stands for."""
    kh, kw, _, cout = kernel.shape
    ph, pw = kh // 2, kw // 2
    b, h, w, _ = x.shape
    xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    out = np.zeros((b, h, w, cout)) + bias
    for dy in range(kh):
        for dx in range(kw):
            out += np.einsum("bhwc,co->bhwo", xp[:, dy : dy + h, dx : dx + w], kernel[dy, dx])
    return out


def test_conv_is_exactly_the_integer_convolution():
    rng = np.random.default_rng(0)
    layer = fixed.quantize_conv(rng.normal(0, 0.2, (3, 3, 5, 7)), rng.normal(0, 0.1, 7))
    x = _activations(rng, (2, 9, 11, 5))
    got = fixed.conv3x3(x, layer)
    w, b = layer["w"].astype(np.int64), layer["b"].astype(np.int64)
    xi = np.pad(x.astype(np.int64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    acc = np.zeros((2, 9, 11, 7), np.int64) + b
    for dy in range(3):
        for dx in range(3):
            acc += np.einsum("bhwc,co->bhwo", xi[:, dy : dy + 9, dx : dx + 11], w[dy, dx])
    assert np.array_equal(got, np.clip(acc >> fixed.FW, -fixed.ACT_MAX, fixed.ACT_MAX).astype(np.float64))


def test_conv_agrees_with_the_float_convolution():
    rng = np.random.default_rng(1)
    kernel, bias = rng.normal(0, 0.2, (3, 3, 4, 6)), rng.normal(0, 0.1, 6)
    x = _activations(rng, (1, 12, 10, 4))
    got = fixed.conv3x3(x, fixed.quantize_conv(kernel, bias)) / (1 << fixed.FA)
    want = _float_conv(x / (1 << fixed.FA), kernel, bias)
    assert np.abs(got - want).max() < 1e-3  # weight rounding at 2**-14 and one floor at 2**-16


def test_igdn_is_exact_and_agrees_with_the_float_formula():
    rng = np.random.default_rng(2)
    beta, gamma = 1.0 + rng.random(4), 0.1 * rng.random((4, 4))
    layer = fixed.quantize_igdn(beta, gamma)
    x = _activations(rng, (1, 5, 5, 4), scale=1.0)
    got = fixed.igdn(x.copy(), layer)
    xi = x.astype(np.int64)
    norm = (np.abs(xi) @ layer["g"].astype(np.int64) + layer["b"].astype(np.int64)) >> fixed.FA
    assert np.array_equal(got, ((xi * np.minimum(norm, 1 << 26)) >> fixed.FG).astype(np.float64))
    xf = x / (1 << fixed.FA)
    assert np.abs(got / (1 << fixed.FA) - xf * (beta + np.abs(xf) @ gamma)).max() < 1e-3


def test_depth_to_space_channel_order():
    x = np.arange(2 * 3 * 4 * 8, dtype=np.float64).reshape(2, 3, 4, 8)  # C = 2 after the shuffle
    y = fixed.depth_to_space(x)
    assert y.shape == (2, 6, 8, 2)
    for dy in range(2):
        for dx in range(2):
            for c in range(2):
                assert np.array_equal(y[:, dy::2, dx::2, c], x[..., (dy * 2 + dx) * 2 + c])


def test_layers_that_could_not_be_exact_are_refused_at_export():
    with pytest.raises(ValueError, match="2\\*\\*53"):
        fixed.quantize_conv(np.full((3, 3, 64, 1), 1e6), np.zeros(1))
    with pytest.raises(ValueError, match="2\\*\\*53"):
        fixed.quantize_igdn(np.ones(2), np.full((2, 2), 1e9))
