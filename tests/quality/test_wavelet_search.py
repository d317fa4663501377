"""quality.wavelet_search: `auto`'s rate search over the wavelet coder, on a fake codec whose figures follow q."""
import math

import pytest

from codec.modes import WAVELET_Q_MAX, Mode
from configs import Gate
from quality.auto import Outcome
from quality.wavelet_search import first_q, search, steered_q


def _wavelet(pass_from: int, db_per_q: float = 20 * math.log10(2) / 24, broken: int | None = None):
    """A fake wavelet coder: PSNR 50 dB at q = pass_from, rising db_per_q per rate point (by default the 6.02 dB per
    octave of quantiser step the search assumes); bytes grow with q."""
    tried = []

    def attempt(mode):
        assert mode.kind == "wavelet"
        tried.append(mode.level)
        psnr = 50.0 + db_per_q * (mode.level - pass_from)
        return Outcome(mode, psnr >= 50.0 and mode.level != broken, psnr, 1.0, 100 + 10 * mode.level,
                       mode.level == broken)

    return attempt, tried


@pytest.mark.parametrize("pass_from", [40, 97, 150, 230])
def test_the_search_finds_the_coarsest_passing_rate_point(pass_from):
    attempt, tried = _wavelet(pass_from)
    best = search(Gate(psnr_min=50.0, max_error_max=20), 4095.0, attempt, lambda t: t)
    assert best.passed and best.mode == Mode.wavelet(pass_from, 20)
    assert len(tried) <= 5


@pytest.mark.parametrize("db_per_q", [0.6, 0.12])
def test_a_model_off_by_a_factor_still_converges(db_per_q):
    """PSNR moving 2.4x faster than the model says (the secant inside the bracket), or half as fast, as at low rates
    (the slope the last two decodes measured)."""
    attempt, tried = _wavelet(120, db_per_q=db_per_q)
    best = search(Gate(psnr_min=50.0), 4095.0, attempt, lambda t: t)
    assert best is not None and best.passed and best.mode.bound is None
    assert best.mode.level - 120 <= 2, tried  # within two rate points of the boundary in five encodes


def test_no_passing_rate_point_returns_none_and_an_integrity_problem_returns_at_once():
    attempt, tried = _wavelet(10**6)
    assert search(Gate(psnr_min=50.0), 4095.0, attempt, lambda t: t) is None
    assert all(q <= WAVELET_Q_MAX for q in tried)
    q0 = first_q(Gate(psnr_min=50.0), 4095.0)
    attempt, tried = _wavelet(q0, broken=q0)
    got = search(Gate(psnr_min=50.0), 4095.0, attempt, lambda t: t)
    assert got.integrity and tried == [q0]


def test_first_q_models_the_gate_psnr_as_uniform_quantisation_noise():
    peak = 4095.0
    q = first_q(Gate(psnr_min=50.0), peak)
    step = (peak + 1) * 2 ** (-q / 24)
    assert 10 * math.log10(peak**2 / (step**2 / 12)) >= 50.0  # the modelled PSNR meets the gate
    assert 10 * math.log10(peak**2 / ((step * 2 ** (1 / 24)) ** 2 / 12)) < 50.0  # and one point coarser would not
    assert first_q(Gate(psnr_min=48.0), peak) < q  # a looser gate starts coarser
    assert first_q(Gate(psnr_min=500.0), peak) == WAVELET_Q_MAX


def test_steering_follows_psnr_and_ssim():
    gate = Gate(psnr_min=50.0, ssim_min=0.98)
    assert steered_q(100, 49.0, 0.999, gate) == 104  # 1 dB short: four rate points finer
    assert steered_q(100, 52.0, 0.999, gate) == 93  # 2 dB over: 7.97 points coarser, rounded to stay passing
    # SSIM binds: 1 - SSIM twice the limit's -> the error variance must halve -> 12 rate points finer
    assert steered_q(100, 60.0, 0.96, gate) == 112


def test_a_coarser_pass_that_is_larger_ends_the_search():
    """Under a guard bytes are not monotone in q: where the guard's corrections grow faster than the bands shrink,
    the search stops at the first coarser pass that is larger instead of walking on."""
    tried = []

    def attempt(mode):
        tried.append(mode.level)
        return Outcome(mode, True, 60.0, 0.999, 10_000 - 10 * mode.level)  # every q passes, coarser is larger

    best = search(Gate(psnr_min=50.0, max_error_max=30), 4095.0, attempt, lambda t: t)
    assert len(tried) == 2 and best.mode.level == tried[0]


def test_a_max_error_past_any_guard_searches_unguarded():
    """A gate's max error is any integer >= 0; past what a wavelet stream records as its guard, no guard is needed
    (no stored value errs that far) and the search asks for unguarded modes instead of failing."""
    attempt, tried = _wavelet(120)
    best = search(Gate(psnr_min=50.0, max_error_max=2**40), 4095.0, attempt, lambda t: t)
    assert best.passed and best.mode.bound is None and best.mode.level == 120
