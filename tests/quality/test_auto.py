"""quality.auto: the k that `auto` tries first passes the gate it was chosen for, on real slices."""
import numpy as np
import pydicom
import pytest

from codec import api
from codec.modes import Mode
from quality import auto, metrics
from tests.realdata import all_files


def _real(prefix: str) -> tuple[np.ndarray, int, bool]:
    path = next(p for p in all_files() if p.name.startswith(prefix))
    ds = pydicom.dcmread(path)
    frame = ds.pixel_array.reshape((-1, int(ds.Rows), int(ds.Columns)))[0]
    return frame, int(ds.BitsStored), int(ds.PixelRepresentation) == 1


def test_psnr_bound_is_the_largest_k_whose_noise_fits():
    peak = 4095.0
    k = auto.psnr_k_bound(60.0, peak)
    mse_max = peak**2 / 10**6
    assert auto.noise_variance(k) <= mse_max < auto.noise_variance(k + 1)
    assert auto.psnr_k_bound(None, peak) == auto.K_LIMIT
    assert auto.psnr_k_bound(200.0, peak) == 0


def test_predicted_ssim_falls_as_k_grows():
    rng = np.random.default_rng(0)
    var = auto.local_variances(rng.integers(0, 4096, (64, 64)))
    preds = [auto.predicted_ssim(var, 4095.0, k) for k in (0, 1, 4, 16, 64)]
    assert preds[0] == 1.0 and all(a > b for a, b in zip(preds, preds[1:]))


@pytest.mark.parametrize("prefix,psnr_min,ssim_min,max_error", [("693_UNCR", 50.0, 0.99, 30), ("MR_small", 48.0, 0.98, None),
                                                                ("CT_small", 50.0, 0.99, 30)])
def test_first_mode_passes_the_gate_it_was_chosen_for(prefix, psnr_min, ssim_min, max_error):
    frame, bits, signed = _real(prefix)
    gate = type("Gate", (), {"psnr_min": psnr_min, "ssim_min": ssim_min, "max_error_max": max_error})
    mode = auto.first_mode(frame, gate, metrics.psnr_peak(frame))
    assert not mode.is_lossless, "the gate leaves room: auto must not store this slice losslessly"
    decoded = api.decode(api.encode(frame, mode, bits, signed))
    assert metrics.max_error(frame, decoded) <= (max_error if max_error is not None else mode.level)
    assert metrics.ssim(frame, decoded) >= ssim_min
    assert metrics.psnr(frame, decoded, bits) >= psnr_min


def test_a_gate_without_room_gets_lossless():
    frame, bits, _ = _real("CT_small")
    gate = type("Gate", (), {"psnr_min": None, "ssim_min": None, "max_error_max": 0})
    assert auto.first_mode(frame, gate, metrics.psnr_peak(frame)) == Mode.lossless()


def test_ladder_halves_k_then_ends_at_lossless():
    chain, m = [], Mode.near_lossless(12)
    while m is not None:
        chain.append(str(m))
        m = auto.next_stricter(m)
    assert chain == ["near-lossless:12", "near-lossless:6", "near-lossless:3", "near-lossless:1", "lossless"]


def test_looser_mode_follows_the_error_the_decode_measured():
    """On the CT 693 the residual layer reproduces the padding and air exactly, so a decode's MSE is about half the
    uniform model's: the model's first k passes with room, and the k scaled by the measured error passes too."""
    frame, bits, signed = _real("693_UNCR")
    gate = type("Gate", (), {"psnr_min": 50.0, "ssim_min": 0.99, "max_error_max": 30})
    peak = metrics.psnr_peak(frame)
    first = auto.first_mode(frame, gate, peak)
    decoded = api.decode(api.encode(frame, first, bits, signed))
    measured = metrics.mse(frame, decoded)
    assert measured < 0.7 * auto.noise_variance(first.level)
    looser = auto.looser_mode(frame, first, measured, gate, peak)
    assert looser is not None and first.level < looser.level <= 30
    decoded = api.decode(api.encode(frame, looser, bits, signed))
    assert metrics.psnr(frame, decoded, bits) >= 50.0 and metrics.ssim(frame, decoded) >= 0.99
    # an error larger than the model's leaves nothing looser; neither does lossless
    assert auto.looser_mode(frame, first, 1.2 * auto.noise_variance(first.level), gate, peak) is None
    assert auto.looser_mode(frame, Mode.lossless(), 0.0, gate, peak) is None
