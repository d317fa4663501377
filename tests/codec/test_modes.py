"""codec.modes: parsing at the edge and the one strictness order."""
import pytest

from codec.modes import Mode, ModeError


def test_parse_round_trips_every_kind():
    for text in ("lossless", "near-lossless:3", "lossy:0", "lossy:4"):
        assert str(Mode.parse(text)) == text
    assert Mode.parse(" Near-Lossless:0 ") == Mode.lossless()


@pytest.mark.parametrize("text", ["", "lossy", "lossy:x", "near-lossless:-1", "lossless:2", "jpeg"])
def test_parse_refuses_what_is_not_a_mode(text):
    with pytest.raises(ModeError):
        Mode.parse(text)


def test_order_is_strictness_not_alphabet():
    modes = [Mode.lossless(), Mode.near_lossless(1), Mode.lossy(4), Mode.near_lossless(8), Mode.lossy(0)]
    assert [str(m) for m in sorted(modes)] == ["lossy:0", "lossy:4", "near-lossless:8", "near-lossless:1", "lossless"]
    assert max(modes) == Mode.lossless() and min(modes) == Mode.lossy(0)
    assert Mode.near_lossless(2) < Mode.near_lossless(1)


def test_error_bound_follows_the_kind():
    assert Mode.lossless().max_error_bound == 0
    assert Mode.near_lossless(5).max_error_bound == 5
    assert Mode.lossy(1).max_error_bound is None
