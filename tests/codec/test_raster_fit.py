"""codec.raster_fit: the predictor layout the encoder picks, and that picking it pays on real slices."""
import numpy as np
import pytest

from codec import raster_fit as F
from codec import residual_raster as R
from tests.helpers.slices import flat, real_slice


@pytest.mark.parametrize("k,gain", [(0, 0.99), (2, 0.995)])
def test_a_ct_with_air_and_body_gets_intensity_class_weights_and_they_pay(k, gain):
    """On the CT 693 the air and padding want a smoothing predictor, the body an extrapolating one: three intensity
    class weight sets code the slice smaller than one set does under the range coder. (Under the context-mixed coder,
    whose intensity context does part of their job, they pay 1.0 % lossless and cost 0.4 % at k = 2.)"""
    v, bits, signed = real_slice("693_UNCR.dcm")
    predictor = F.fit_predictor(v, k)
    assert len(predictor.weights) == F.INTENSITY_CLASSES and not predictor.by_parity
    assert len(predictor.thresholds) == F.INTENSITY_CLASSES - 1 and np.all(np.diff(predictor.thresholds) > 0)
    assert np.all(predictor.weights.sum(axis=1) == 1 << 12)
    by_level = R.encode_residual(v, flat(v), k, bits, signed, predictor, mixed=False)
    one = R.encode_residual(v, flat(v), k, bits, signed, F.fit_predictor(v, k, intensity=False), mixed=False)
    assert len(by_level) < gain * len(one)  # measured: 0.985 lossless, 0.990 at k = 2
    assert np.abs(R.decode_residual(by_level, flat(v), k, bits, signed) - v).max() <= k


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_small_slices_keep_one_set(name):
    """Where three sets would not pay for their weights by the proxy (128² and 64² slices), one set is sent."""
    v, _, _ = real_slice(name)
    assert len(F.fit_predictor(v, 0).weights) == 1


def test_version_2_layouts_never_carry_intensity_classes():
    v, _, _ = real_slice("693_UNCR.dcm")
    assert len(F.fit_weights(v, 0)) in (1, 4)


def test_the_class_the_fit_uses_is_the_one_the_kernel_uses():
    """intensity_class (numpy, the fit) and raster_kernels.predict (numba, the walk) split at the same levels:
    a pixel exactly at a threshold belongs to the upper class."""
    thresholds = np.array([10, 20], np.int64)
    w = np.array([9, 10, 19, 20, 100, -5])
    n = np.array([9, 10, 19, 21, 100, -5])
    assert list(F.intensity_class(w, n, thresholds)) == [0, 1, 1, 2, 2, 0]
