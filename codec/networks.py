"""The learned transform's Keras networks (trained here, loaded for use by codec/learned.py): Ballé et al. 2018
scale hyperprior, small enough for 2 CPU cores.

Keras 3 with `keras.ops` only, so the same weights run under the TensorFlow and JAX backends.

    x (1 ch, normalised to [0, 1])
      g_a: 4 x [conv 5x5 stride 2 + simplified GDN]        -> y (M ch at 1/16)
      gain[q] * y                                          -> quantised latents (one model, Q rate points)
      h_a: conv 3x3, 2 x conv 5x5 stride 2 (ReLU)         -> z (NZ ch at 1/64), per-channel Gaussian prior
      h_s: 2 x [conv 3x3 -> depth-to-space] (ReLU), conv 3x3 -> log sigma of every latent
      g_s: 4 x [conv 3x3 -> depth-to-space + simplified IGDN] / inv_gain[q] -> x_hat

The decoder-side networks (g_s, h_s) use only stride-1 odd-kernel 'same' convolutions and depth-to-space, so
codec/fixed.py can re-run them as an exact integer network in numpy (the coding path never depends on float luck).
Nonlinearity: simplified GDN y = x / (beta + gamma |x|) and its inverse (Johnston et al. 2019), cheaper than
GDN's square root at the same rate-distortion.
"""
from __future__ import annotations

import math

import keras
from keras import layers, ops

# Architecture constants (part of the model identity).
N_A = (16, 32, 48)  # analysis channels after the first three strided convs
M = 48  # latent channels
NH = 32  # hyper channels
NZ = 24  # hyper-latent channels
N_S = (48, 32, 16)  # synthesis channels after each of the first three upsampling stages
Q = 5  # rate points
GAIN0 = 12.0  # initial latent gain at the middle rate point: starts the latents at useful magnitudes
SCALE_MIN, SCALE_MAX, SCALE_LEVELS = 0.11, 256.0, 64
LOG_SCALE_MIN, LOG_SCALE_MAX = math.log(SCALE_MIN), math.log(SCALE_MAX)


@keras.saving.register_keras_serializable("medzip")
class SimpleGDN(layers.Layer):
    """y = x / (beta + gamma |x|)  (inverse=False)  or  y = x * (beta + gamma |x|)  (inverse=True)."""

    def __init__(self, inverse: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.inverse = inverse

    def build(self, input_shape):
        c = int(input_shape[-1])
        self.beta_p = self.add_weight(name="beta_p", shape=(c,), initializer="ones")
        eye = keras.ops.eye(c) * 0.1 + 0.001

        self.gamma_p = self.add_weight(
            name="gamma_p", shape=(c, c), initializer=lambda shape, dtype=None: ops.sqrt(eye)
        )

    def params(self):
        beta = ops.square(self.beta_p) + 1e-4
        gamma = ops.square(self.gamma_p)
        return beta, gamma

    def call(self, x):
        beta, gamma = self.params()
        norm = ops.matmul(ops.abs(x), gamma) + beta
        return x * norm if self.inverse else x / norm

    def get_config(self):
        return {**super().get_config(), "inverse": self.inverse}


@keras.saving.register_keras_serializable("medzip")
class DepthToSpace(layers.Layer):
    """(B, H, W, 4C) -> (B, 2H, 2W, C); input channel index = (dy*2 + dx)*C + c."""

    def call(self, x):
        s = ops.shape(x)
        h, w, c = s[1], s[2], s[3] // 4
        x = ops.reshape(x, (-1, h, w, 2, 2, c))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (-1, h * 2, w * 2, c))

    def compute_output_shape(self, s):
        dbl = lambda d: None if d is None else 2 * d
        return (s[0], dbl(s[1]), dbl(s[2]), s[3] // 4)


def depth_to_space(x):
    return DepthToSpace()(x)


def _conv(filters, k, stride=1, name=None, bias=True):
    return layers.Conv2D(filters, k, strides=stride, padding="same", use_bias=bias, name=name)


def build_analysis() -> keras.Model:
    x = keras.Input((None, None, 1), name="x")
    h = x
    chans = (*N_A, M)
    for i, c in enumerate(chans):
        h = _conv(c, 5, 2, name=f"ga_conv{i}")(h)
        if i < 3:
            h = SimpleGDN(name=f"ga_gdn{i}")(h)
    return keras.Model(x, h, name="g_a")


def build_synthesis() -> keras.Model:
    y = keras.Input((None, None, M), name="y_hat")
    h = y
    for i, c in enumerate((*N_S, 1)):
        h = _conv(4 * c, 3, name=f"gs_conv{i}")(h)
        h = depth_to_space(h)
        if i < 3:
            h = SimpleGDN(inverse=True, name=f"gs_igdn{i}")(h)
    return keras.Model(y, h, name="g_s")


def build_hyper_analysis() -> keras.Model:
    y = keras.Input((None, None, M), name="y")
    h = layers.ReLU()(_conv(NH, 3, name="ha_conv0")(ops.abs(y)))
    h = layers.ReLU()(_conv(NH, 5, 2, name="ha_conv1")(h))
    z = _conv(NZ, 5, 2, name="ha_conv2")(h)
    return keras.Model(y, z, name="h_a")


def build_hyper_synthesis() -> keras.Model:
    z = keras.Input((None, None, NZ), name="z_hat")
    h = z
    for i in range(2):
        h = depth_to_space(_conv(4 * NH, 3, name=f"hs_conv{i}")(h))
        h = layers.ReLU()(h)
    log_sigma = _conv(M, 3, name="hs_conv2")(h)
    return keras.Model(z, log_sigma, name="h_s")


@keras.saving.register_keras_serializable("medzip")
class RatePoints(layers.Layer):
    """Per rate point q: latent gain, inverse gain (Cui et al. 2021 gain units) and the z prior is shared."""

    def build(self, input_shape=None):
        init = [[GAIN0 * 2.0 ** (0.75 * (q - (Q - 1) / 2))] * M for q in range(Q)]
        self.log_gain = self.add_weight(
            name="log_gain", shape=(Q, M), initializer=lambda s, dtype=None: ops.log(ops.array(init, "float32"))
        )
        self.log_inv_gain = self.add_weight(
            name="log_inv_gain", shape=(Q, M), initializer=lambda s, dtype=None: -ops.log(ops.array(init, "float32"))
        )

    def call(self, q):
        # one_hot @ table, not take(): under TensorFlow take() yields a sparse (IndexedSlices) gradient with
        # repeated rows, which Keras' Adam applies wrongly (a row moved 0.00012 where dense Adam moves 0.003).
        pick = ops.one_hot(q, Q)
        g = ops.exp(ops.matmul(pick, self.log_gain))
        ig = ops.exp(ops.matmul(pick, self.log_inv_gain))
        return g[:, None, None, :], ig[:, None, None, :]


@keras.saving.register_keras_serializable("medzip")
class ZPrior(layers.Layer):
    """Per-channel Gaussian prior of the hyper-latents z (learned mean and log scale)."""

    def build(self, input_shape=None):
        self.mean = self.add_weight(name="mean", shape=(NZ,), initializer="zeros")
        self.log_scale = self.add_weight(name="log_scale", shape=(NZ,), initializer="zeros")

    def call(self, z):
        return gaussian_bits(z - self.mean, ops.exp(self.log_scale))


def _std_cdf(v):
    return 0.5 * (1.0 + ops.erf(v * (1.0 / math.sqrt(2.0))))


def gaussian_bits(v, sigma):
    """-log2 P(v) for v (noisy or integer) under N(0, sigma) integrated over [v-1/2, v+1/2]."""
    a = ops.abs(v)
    p = _std_cdf((0.5 - a) / sigma) - _std_cdf((-0.5 - a) / sigma)
    return -ops.log(ops.maximum(p, 1e-9)) / math.log(2.0)


def sigma_from_log(log_sigma):
    return ops.exp(ops.clip(log_sigma, LOG_SCALE_MIN, LOG_SCALE_MAX))


def load_part(part, weights: dict, prefix: str) -> None:
    """Assign weights saved by Networks.weights_dict (keys 'prefix/<variable path>') to one sub-network."""
    for v in part.weights:
        key = f"{prefix}/{v.path}"
        if key not in weights:
            raise KeyError(f"weights file lacks {key}")
        v.assign(weights[key])


class Networks:
    """The five sub-networks and the rate-point parameters, kept together for training and saving."""

    def __init__(self):
        self.g_a = build_analysis()
        self.g_s = build_synthesis()
        self.h_a = build_hyper_analysis()
        self.h_s = build_hyper_synthesis()
        self.rates = RatePoints(name="rates")
        self.rates.build()
        self.z_prior = ZPrior(name="z_prior")
        self.z_prior.build()

    @property
    def parts(self):
        return {"g_a": self.g_a, "g_s": self.g_s, "h_a": self.h_a, "h_s": self.h_s,
                "rates": self.rates, "z_prior": self.z_prior}

    @property
    def trainable_variables(self):
        out = []
        for p in self.parts.values():
            out += list(p.trainable_variables)
        return out

    def weights_dict(self) -> dict:
        """name -> numpy array, stable names (part/variable path)."""
        import numpy as np

        out = {}
        for pname, p in self.parts.items():
            for v in p.weights:
                out[f"{pname}/{v.path}"] = np.asarray(ops.convert_to_numpy(v))
        return out

    def load_weights_dict(self, d: dict) -> None:
        for pname, p in self.parts.items():
            for v in p.weights:
                key = f"{pname}/{v.path}"
                if key not in d:
                    raise KeyError(f"weights file lacks {key}")
                v.assign(d[key])

    def train_forward(self, x, q, noise_y, noise_z, noisy_synthesis=True):
        """Returns (x_hat, bits_y per sample, bits_z per sample); noise_* are U(-1/2,1/2) samples.

        noisy_synthesis: the synthesis sees y + noise (Ballé et al. 2018), so the distortion feels the quantisation
        step. With False it sees round(y) through a straight-through gradient, which matches decoding but is blind
        to the step; training uses it only for the final steps (lab/train.py)."""
        g, ig = self.rates(q)
        y = self.g_a(x) * g
        z = self.h_a(y)
        z_tilde = z + noise_z
        bits_z = ops.sum(self.z_prior(z_tilde), axis=(1, 2, 3))
        z_ste = z + ops.stop_gradient(ops.round(z) - z)  # z is coded as the integers round(z)
        sigma = sigma_from_log(self.h_s(z_ste))
        y_tilde = y + noise_y
        bits_y = ops.sum(gaussian_bits(y_tilde, sigma), axis=(1, 2, 3))
        y_hat = y_tilde if noisy_synthesis else y + ops.stop_gradient(ops.round(y) - y)
        x_hat = self.g_s(y_hat * ig)
        return x_hat, bits_y, bits_z
