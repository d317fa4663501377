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
