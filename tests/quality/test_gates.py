"""Gate evaluation: decoded vs original -> the failures with their figures, the mode's bound, HU for CT."""
from __future__ import annotations

import math

import numpy as np
import pytest

from codec.modes import Mode
from configs import Gate
from quality import gates, metrics


def _slice(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 4096, size=(32, 32), dtype=np.uint16)


def test_a_failing_slice_names_each_metric_with_its_figure_and_limit():
    original = _slice()
    decoded = original.copy()
    decoded[3, 4] += 5  # max error 5, PSNR about 88 dB on 12 bits
    gate = Gate(psnr_min=90.0, ssim_min=0.5, max_error_max=2)
    judged = gates.evaluate(original, decoded, gate, Mode.lossy(1), bits_stored=12)
    psnr = metrics.psnr(original, decoded, 12)
    assert judged.figures == {"psnr": psnr, "ssim": metrics.ssim(original, decoded), "max_error": 5}
    assert [f.metric for f in judged.failures] == ["psnr", "max_error"]
    assert judged.failures[0] == gates.Failure("psnr", psnr, 90.0)
    assert judged.gate_reasons == [f"PSNR {psnr:.2f} dB < 90.0", "max error 5 > 2"]
    assert not judged.passed and judged.integrity == () and judged.max_error_hu is None


def test_a_passing_slice_and_an_exact_one():
    original = _slice(1)
    judged = gates.evaluate(original, original.copy(), Gate(psnr_min=40.0, ssim_min=0.99, max_error_max=0),
                            Mode.lossless(), bits_stored=12)
    assert judged.passed and judged.failures == () and judged.gate_reasons == []
    assert math.isinf(judged["psnr"]) and judged["ssim"] == 1.0 and judged["max_error"] == 0


def test_ssim_reason_has_four_decimals():
    original = _slice(2)
    decoded = np.clip(original.astype(np.int64) + _slice(3) // 64, 0, 4095).astype(np.uint16)
    judged = gates.evaluate(original, decoded, Gate(ssim_min=1.0), Mode.lossy(0), bits_stored=12)
    (failure,) = judged.failures
    assert failure.metric == "ssim" and str(failure) == f"SSIM {judged['ssim']:.4f} < 1.0"


def test_a_broken_mode_bound_is_an_integrity_problem_not_a_gate_failure():
    original = _slice(4)
    decoded = original.copy()
    decoded[0, 0] += 3
    judged = gates.evaluate(original, decoded, Gate(), Mode.near_lossless(2), bits_stored=12)
    assert judged.failures == ()
    assert judged.integrity == ("max error 3 exceeds the near-lossless:2 bound 2",)
    assert not judged.passed


def test_ct_max_error_in_hounsfield_units():
    original = _slice(5).astype(np.int16)
    decoded = original.copy()
    decoded[1, 1] -= 4
    judged = gates.evaluate(original, decoded, Gate(), Mode.lossy(2), bits_stored=12, modality="ct",
                            rescale_slope=-0.5)
    assert judged.max_error_hu == 2.0
    mr = gates.evaluate(original, decoded, Gate(), Mode.lossy(2), bits_stored=12, modality="MR", rescale_slope=2)
    assert mr.max_error_hu is None


def test_a_decode_of_the_wrong_shape_fails_with_the_worst_figures():
    judged = gates.evaluate(_slice(), _slice()[:16], Gate(), Mode.lossless(), bits_stored=12)
    assert judged.gate_reasons == ["wrong shape"] and not judged.passed
    assert judged.figures == {"psnr": -math.inf, "ssim": 0.0, "max_error": 4096}
    assert judged.integrity == ("decoded shape (16, 32) != original (32, 32)",)


def test_judge_rejudges_recorded_figures():
    figures = {"psnr": 44.0, "ssim": 0.97, "max_error": 9}
    judged = gates.judge(figures, Gate(psnr_min=45.0, ssim_min=0.98), Mode.near_lossless(8))
    assert judged.gate_reasons == ["PSNR 44.00 dB < 45.0", "SSIM 0.9700 < 0.98"]
    assert judged.integrity == ("max error 9 exceeds the near-lossless:8 bound 8",)
    assert gates.judge(figures, Gate(), Mode.lossy(3)).passed


@pytest.mark.parametrize("limit", [None, 0])
def test_a_missing_limit_passes_and_zero_is_a_limit(limit):
    judged = gates.judge({"psnr": 1.0, "ssim": 0.0, "max_error": 1}, Gate(max_error_max=limit), Mode.lossy(0))
    assert [f.metric for f in judged.failures] == ([] if limit is None else ["max_error"])
