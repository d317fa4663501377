"""quality.auto: the k that `auto` tries first passes the gate it was chosen for, on real slices."""
import math

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


def test_steered_k_follows_the_measured_figures():
    """The k a measured decode predicts: larger where it had room on the bound that binds, smaller where it failed,
    capped by the max error."""
    gate = type("Gate", (), {"psnr_min": 50.0, "ssim_min": 0.99, "max_error_max": 30})
    peak = 4000.0
    mse_max = peak**2 / 10**5
    # PSNR binds: a decode at k = 10 with half the allowed MSE (SSIM far above its bound) may go to k(k+1)/3 twice
    psnr = 10 * np.log10(peak**2 / (mse_max / 2))
    k = auto.steered_k(10, psnr, 0.999, gate, peak)
    assert auto.noise_variance(k) <= 2 * auto.noise_variance(10) < auto.noise_variance(k + 1)
    # SSIM binds: 1 - SSIM twice the allowed one halves the error variance
    k = auto.steered_k(10, 80.0, 0.98, gate, peak)
    assert auto.noise_variance(k) <= 0.5 * auto.noise_variance(10) < auto.noise_variance(k + 1)
    assert auto.steered_k(10, 90.0, 0.99999, gate, peak) == 30  # room on both: the max error caps it
    assert auto.steered_k(10, math.inf, 1.0, gate, peak) == 30


def _search_on(frame, bits, signed, gate):
    peak = metrics.psnr_peak(frame)
    tried = []

    def attempt(mode):
        payload = api.encode(frame, mode, bits, signed)
        decoded = api.decode(payload)
        tried.append(mode)
        passed = metrics.psnr(frame, decoded, bits) >= gate.psnr_min and metrics.ssim(frame, decoded) >= gate.ssim_min \
            and metrics.max_error(frame, decoded) <= gate.max_error_max
        return auto.Outcome(mode, passed, metrics.psnr(frame, decoded, bits), metrics.ssim(frame, decoded),
                            len(payload))

    result, failed = auto.search(frame, gate, peak, Mode.lossless(), attempt, lambda t: t)
    return result.mode, result, failed, tried


def test_search_goes_past_the_models_first_k_where_the_decode_leaves_room():
    """On the CT 693 the residual layer reproduces the padding and air exactly, so a decode's MSE is about half the
    uniform model's: the first k passes with room, and search stores a larger k that passes and is smaller."""
    frame, bits, signed = _real("693_UNCR")
    gate = type("Gate", (), {"psnr_min": 50.0, "ssim_min": 0.99, "max_error_max": 30})
    first = auto.first_mode(frame, gate, metrics.psnr_peak(frame))
    mode, result, failed, tried = _search_on(frame, bits, signed, gate)
    assert result.passed and not failed and tried[0] == first and mode.level > first.level
    assert result.size < len(api.encode(frame, first, bits, signed)) and len(tried) <= 3


def _fake(frame, gate, excess: float, integrity_at: int | None = None):
    """A codec whose decodes err by `excess` × k(k+1)/3 and shrink with k (size 10000 / (k + 1))."""
    peak = metrics.psnr_peak(frame)
    tried = []

    def attempt(mode):
        tried.append(mode)
        if mode.is_lossless:
            return auto.Outcome(mode, True, math.inf, 1.0, 20_000)
        psnr = 10 * np.log10(peak**2 / (excess * auto.noise_variance(mode.level)))
        broken = mode.level == integrity_at
        return auto.Outcome(mode, psnr >= gate.psnr_min and not broken, psnr, 1.0, 10_000 // (mode.level + 1), broken)

    return peak, attempt, tried


def test_search_steps_down_to_the_k_a_failed_decode_predicts():
    """When decodes err more than the model says (here 1.3× its variance, a stand-in for a slice it misjudges), the
    first k fails on PSNR and the failure's own figures pick the next k, which passes: no halving."""
    frame, _, _ = _real("CT_small")
    gate = type("Gate", (), {"psnr_min": 50.0, "ssim_min": None, "max_error_max": 30})
    peak, attempt, tried = _fake(frame, gate, 1.3)
    result, failed = auto.search(frame, gate, peak, Mode.lossless(), attempt, lambda t: t)
    first = auto.first_mode(frame, gate, peak)
    assert [f.mode for f in failed] == [first] and result.passed
    best = max(k for k in range(1, 31) if 10 * np.log10(peak**2 / (1.3 * auto.noise_variance(k))) >= 50.0)
    assert first.level // 2 < result.mode.level <= best and len(tried) <= 5


def test_search_never_steers_past_an_integrity_problem_nor_below_the_ceiling():
    frame, _, _ = _real("CT_small")
    gate = type("Gate", (), {"psnr_min": 50.0, "ssim_min": None, "max_error_max": 30})
    peak = metrics.psnr_peak(frame)
    first = auto.first_mode(frame, gate, peak)
    # a first attempt whose decode broke its bound: returned as it is, no retry that could hide it
    _, attempt, tried = _fake(frame, gate, 1.0, integrity_at=first.level)
    result, failed = auto.search(frame, gate, peak, Mode.lossless(), attempt, lambda t: t)
    assert result.integrity and result.mode == first and tried == [first] and failed == []
    # a failure whose steered retry would be stricter than the ceiling: left to the caller's ladder
    _, attempt, tried = _fake(frame, gate, 1.3)
    result, failed = auto.search(frame, gate, peak, first, attempt, lambda t: t)
    assert tried == [first] and not result.passed and failed == []


def test_search_on_a_gate_without_room_is_one_lossless_attempt():
    frame, _, _ = _real("CT_small")
    gate = type("Gate", (), {"psnr_min": None, "ssim_min": None, "max_error_max": 0})
    peak, attempt, tried = _fake(frame, gate, 1.0)
    result, failed = auto.search(frame, gate, peak, Mode.lossless(), attempt, lambda t: t)
    assert result.mode.is_lossless and tried == [Mode.lossless()] and failed == []


def test_search_keeps_steering_after_a_retry_that_just_misses():
    """A slice whose failures report SSIM just short of the gate (a Philips DWI 128² missed 0.98 by 0.0002 at the
    retry): the search retries once more at the k the last failure predicts instead of leaving the ladder to halve
    k, and stores the largest k that passes."""
    frame, _, _ = _real("CT_small")
    gate = type("Gate", (), {"psnr_min": None, "ssim_min": 0.98, "max_error_max": 30})
    peak = metrics.psnr_peak(frame)
    first = auto.first_mode(frame, gate, peak).level
    limit = first - 2  # the largest k that passes
    tried = []

    def attempt(mode):
        tried.append(mode.level)
        ok = mode.level <= limit
        return auto.Outcome(mode, ok, 60.0, 0.99 if ok else 0.9799, 10_000 // (mode.level + 1))

    result, failed = auto.search(frame, gate, peak, Mode.lossless(), attempt, lambda t: t)
    assert tried[:3] == [first, first - 1, first - 2] and result.passed and result.mode.level == limit
    assert [f.mode.level for f in failed] == [first, first - 1]
