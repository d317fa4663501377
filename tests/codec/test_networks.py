"""codec/networks.py: the Keras networks take the shipped float weights back unchanged, and a training forward pass
spends more bits for less error at a higher rate point."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from codec import learned


def test_shipped_weights_load_and_the_rate_points_trade_bits_for_error():
    from codec import networks

    with np.load(learned.DEFAULT_WEIGHTS) as d:
        floats = {k[len("float/"):]: d[k] for k in d.files if k.startswith("float/")}
    net = networks.Networks()
    net.load_weights_dict(floats)
    back = net.weights_dict()
    assert set(back) == set(floats) and all(np.array_equal(back[k], floats[k]) for k in floats)

    yy, xx = np.mgrid[0:64, 0:64]
    img = (0.5 + 0.3 * np.sin(xx / 5.0) * np.cos(yy / 7.0)).astype(np.float32)
    x = np.stack([img, img])[..., None]
    q = np.array([0, networks.Q - 1], np.int32)
    ny = np.zeros((2, 4, 4, networks.M), np.float32)
    nz = np.zeros((2, 1, 1, networks.NZ), np.float32)
    x_hat, bits_y, bits_z = (np.asarray(a) for a in net.train_forward(x, q, ny, nz, noisy_synthesis=False))
    assert x_hat.shape == x.shape
    bits = bits_y + bits_z
    mse = ((x_hat - x) ** 2).mean(axis=(1, 2, 3))
    assert bits[1] > bits[0] > 0 and mse[1] < mse[0]
