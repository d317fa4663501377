"""The escalation ladder: lossy -> near-lossless k -> lossless, never past the ceiling, in Mode's own order."""
import pytest

from codec.modes import Mode
from configs import Gate
from quality.escalation import DEFAULT_K, near_lossless_k, next_mode

L = Mode.parse


@pytest.mark.parametrize(("current", "gate", "ceiling", "expected"), [
    ("lossy:3", Gate(psnr_min=50), "lossless", "near-lossless:2"),
    ("lossy:3", Gate(max_error_max=1), "lossless", "near-lossless:1"),
    ("lossy:3", Gate(max_error_max=0), "lossless", "lossless"),
    ("near-lossless:2", Gate(psnr_min=50), "lossless", "lossless"),
    ("near-lossless:5", Gate(psnr_min=50), "lossless", "near-lossless:2"),
    ("lossy:3", Gate(psnr_min=50), "near-lossless:4", "near-lossless:4"),
    ("lossy:3", Gate(psnr_min=50), "lossy:3", None),
    ("lossless", Gate(psnr_min=1000), "lossless", None),
])
def test_escalation_ladder(current, gate, ceiling, expected):
    got = next_mode(L(current), gate, L(ceiling))
    assert (str(got) if got else None) == expected


def test_each_step_is_stricter_and_the_ladder_ends_at_the_ceiling():
    for ceiling in (Mode.lossless(), Mode.near_lossless(1), Mode.near_lossless(4), Mode.lossy(6)):
        mode, climbed = Mode.lossy(0), [Mode.lossy(0)]
        while (nxt := next_mode(mode, Gate(psnr_min=99.0), ceiling)) is not None:
            assert nxt > mode and nxt <= ceiling
            mode = nxt
            climbed.append(mode)
        assert climbed == sorted(climbed) and mode == max(ceiling, Mode.lossy(0))
        assert len(climbed) <= 3


def test_k_is_the_gates_max_error_capped_at_the_default():
    assert near_lossless_k(Gate()) == DEFAULT_K
    assert near_lossless_k(Gate(max_error_max=1)) == 1
    assert near_lossless_k(Gate(max_error_max=30)) == DEFAULT_K


def test_a_slice_failing_at_a_large_k_halves_k_before_lossless():
    from configs import Gate
    from quality.escalation import next_mode

    gate, ceiling = Gate(max_error_max=30), Mode.lossless()
    chain, m = [], Mode.near_lossless(25)
    while m is not None:
        chain.append(str(m))
        m = next_mode(m, gate, ceiling)
    assert chain == ["near-lossless:25", "near-lossless:12", "near-lossless:6", "near-lossless:3", "near-lossless:2",
                     "lossless"]


def _codec(sizes: dict[str, int], passing: set[str], broken: frozenset = frozenset()):
    """A fake codec for settle: each mode's size, which modes pass their gate, which break their bound."""
    from quality.auto import Outcome

    tried = []

    def attempt(mode):
        tried.append(str(mode))
        return Outcome(mode, str(mode) in passing and str(mode) not in broken, 50.0, 0.99, sizes.get(str(mode), 100),
                       str(mode) in broken)

    return attempt, tried


def test_settle_climbs_the_ladder_in_order_and_stops_at_an_integrity_problem():
    import numpy as np

    from quality.escalation import settle

    gate = Gate(psnr_min=40.0, max_error_max=2)
    attempt, tried = _codec({}, passing={"lossless"})
    done, failed, lossless = settle(Mode.lossy(0), np.zeros((8, 8)), gate, 100.0, Mode.lossless(), attempt, lambda t: t)
    assert tried == ["lossy:0", "near-lossless:2", "lossless"] and done.mode.is_lossless and lossless is None
    assert [str(f.mode) for f in failed] == ["lossy:0", "near-lossless:2"]
    attempt, tried = _codec({}, passing={"lossless"}, broken=frozenset({"near-lossless:2"}))
    done, failed, _ = settle(Mode.lossy(0), np.zeros((8, 8)), gate, 100.0, Mode.lossless(), attempt, lambda t: t)
    assert tried == ["lossy:0", "near-lossless:2"] and done.integrity and not done.passed


def test_settle_under_auto_measures_lossless_and_keeps_it_where_it_is_not_larger():
    import numpy as np

    from quality.auto import AUTO
    from quality.escalation import settle

    flat = np.full((16, 16), 7)  # the model's first k: the gate's max error (a flat slice has no variance)
    gate = Gate(psnr_min=None, ssim_min=None, max_error_max=3)
    attempt, tried = _codec({"near-lossless:3": 40, "lossless": 60}, passing={"near-lossless:3", "lossless"})
    done, failed, lossless = settle(AUTO, flat, gate, 1.0, Mode.lossless(), attempt, lambda t: t)
    assert str(done.mode) == "near-lossless:3" and lossless.size == 60 and not failed
    attempt, tried = _codec({"near-lossless:3": 80, "lossless": 60}, passing={"near-lossless:3", "lossless"})
    done, _, lossless = settle(AUTO, flat, gate, 1.0, Mode.lossless(), attempt, lambda t: t)
    assert done.mode.is_lossless and done is lossless, "lossless is smaller here and always passes"


def _auto_codec(wavelet_bytes: int, nl_bytes: int = 2000):
    """A fake codec for settle under auto: near-lossless k passes for k <= 5 (a slice whose PSNR holds k down),
    every wavelet rate point q >= 100 passes at `wavelet_bytes` + q."""
    from quality.auto import Outcome

    tried = []

    def attempt(mode):
        tried.append(str(mode))
        if mode.kind == "wavelet":
            return Outcome(mode, mode.level >= 100, 50.0 + (mode.level - 100) / 4, 0.999, wavelet_bytes + mode.level)
        ok = mode.is_lossless or mode.level <= 5
        return Outcome(mode, ok, 50.0 if ok else 49.0, 0.999, nl_bytes if not mode.is_lossless else 5000)

    return attempt, tried


def test_settle_under_auto_searches_the_wavelet_where_psnr_held_k_down_and_keeps_the_smaller():
    import numpy as np

    from quality.auto import AUTO
    from quality.escalation import settle

    values = np.random.default_rng(0).integers(0, 1000, (16, 16))
    gate = Gate(psnr_min=50.0, max_error_max=30)  # peak ~1000: the model's k is 4, far below the max error
    attempt, tried = _auto_codec(wavelet_bytes=900)
    done, failed, lossless = settle(AUTO, values, gate, 999.0, Mode.lossless(), attempt, lambda t: t)
    assert done.mode.kind == "wavelet" and done.mode.bound == 30 and done.passed and not failed
    assert tried[0] == "near-lossless:4" and lossless.size == 5000
    attempt, tried = _auto_codec(wavelet_bytes=4000)
    done, _, _ = settle(AUTO, values, gate, 999.0, Mode.lossless(), attempt, lambda t: t)
    assert str(done.mode) == "near-lossless:4", "the wavelet is kept only where it is smaller"
    attempt, tried = _auto_codec(wavelet_bytes=900)
    done, _, _ = settle(AUTO, values, Gate(psnr_min=50.0, max_error_max=4), 999.0, Mode.lossless(), attempt,
                        lambda t: t)
    assert str(done.mode) == "near-lossless:4" and not any(t.startswith("wavelet") for t in tried), \
        "k = 4 against a max error of 4: the max error binds, no wavelet search"
    attempt, tried = _auto_codec(wavelet_bytes=900)
    settle(AUTO, values, gate, 999.0, Mode.near_lossless(2), attempt, lambda t: t)
    assert any(t.startswith("wavelet") for t in tried), "a near-lossless ceiling allows the looser wavelet"


def test_settle_under_auto_searches_the_wavelet_on_a_slice_the_model_sends_to_lossless():
    """A slice of small range (a GE MPRAGE 256², values 0..165): the error model admits no k at 48 dB, so the
    near-lossless search is one lossless encode; the wavelet, searched after it, passes in fewer bytes and is kept,
    and the lossless size recorded is that first encode's (not coded twice)."""
    import numpy as np

    from quality.auto import AUTO
    from quality.escalation import settle

    values = np.random.default_rng(1).integers(0, 166, (16, 16))
    gate = Gate(psnr_min=48.0, max_error_max=20)
    attempt, tried = _auto_codec(wavelet_bytes=900)
    done, failed, lossless = settle(AUTO, values, gate, 165.0, Mode.lossless(), attempt, lambda t: t)
    assert tried[0] == "lossless" and tried.count("lossless") == 1
    assert done.mode.kind == "wavelet" and done.passed and lossless.mode.is_lossless and lossless.size == 5000
    attempt, tried = _auto_codec(wavelet_bytes=900)
    done, _, _ = settle(AUTO, values, Gate(psnr_min=48.0, max_error_max=0), 165.0, Mode.lossless(), attempt,
                        lambda t: t)
    assert tried == ["lossless"] and done.mode.is_lossless, "a gate that allows no error never tries the wavelet"
