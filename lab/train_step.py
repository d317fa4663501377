"""One compiled optimisation step of the codec, for whichever Keras backend is active.

TensorFlow: tf.function + GradientTape (GPU when TensorFlow sees one). JAX: jax.jit of a stateless step (the
variables' values travel through the step; `sync()` writes them back into the Keras variables before saving) -
the route for a GPU machine that has JAX but no TensorFlow. The loss is the same keras.ops expression on both.
"""
from __future__ import annotations

import numpy as np


def _loss_terms(net, lam, pixels, x, q, ny, nz, noisy):
    from keras import ops

    x_hat, bits_y, bits_z = net.train_forward(x, q, ny, nz, noisy_synthesis=noisy)
    bpp = (bits_y + bits_z) / pixels
    d = 255.0**2 * ops.mean(ops.square(x - x_hat), axis=(1, 2, 3))
    return ops.mean(bpp + ops.take(lam, q) * d), bpp, d


class TensorFlowStep:
    def __init__(self, net, opt, variables, lambdas, pixels):
        import tensorflow as tf

        lam = tf.constant(np.asarray(lambdas, np.float32))

        @tf.function
        def step(x, q, ny, nz, noisy):
            with tf.GradientTape() as tape:
                loss, bpp, d = _loss_terms(net, lam, pixels, x, q, ny, nz, noisy)
            opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss, bpp, d

        self._step, self._tf = step, tf

    def __call__(self, x, q, ny, nz, noisy: bool):
        c = self._tf.constant
        loss, bpp, d = self._step(c(x), c(q), c(ny), c(nz), bool(noisy))
        return float(loss), bpp.numpy(), d.numpy()

    def sync(self) -> None:
        """Variables are updated in place under TensorFlow."""


class JaxStep:
    def __init__(self, net, opt, variables, lambdas, pixels):
        import jax
        import keras

        lam = jax.numpy.asarray(np.asarray(lambdas, np.float32))
        self._variables, self._opt = variables, opt

        def loss_fn(values, x, q, ny, nz, noisy):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                loss, bpp, d = _loss_terms(net, lam, pixels, x, q, ny, nz, noisy)
            return loss, (bpp, d)

        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

        def step(values, opt_values, x, q, ny, nz, noisy):
            (loss, (bpp, d)), grads = grad_fn(values, x, q, ny, nz, noisy)
            values, opt_values = opt.stateless_apply(opt_values, grads, values)
            return values, opt_values, loss, bpp, d

        self._step = jax.jit(step, static_argnums=(6,))
        self._values = [v.value for v in variables]
        self._opt_values = [v.value for v in opt.variables]

    def __call__(self, x, q, ny, nz, noisy: bool):
        self._values, self._opt_values, loss, bpp, d = self._step(
            self._values, self._opt_values, x, q, ny, nz, bool(noisy)
        )
        return float(loss), np.asarray(bpp), np.asarray(d)

    def sync(self) -> None:
        for v, value in zip(self._variables, self._values):
            v.assign(value)
        for v, value in zip(self._opt.variables, self._opt_values):
            v.assign(value)


def make_step(net, opt, variables, lambdas, pixels):
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        return TensorFlowStep(net, opt, variables, lambdas, pixels)
    if backend == "jax":
        return JaxStep(net, opt, variables, lambdas, pixels)
    raise RuntimeError(f"training needs the tensorflow or jax Keras backend, not {backend!r}")
