"""codec.modes: parsing at the edge and the one strictness order."""
import pytest

from codec.modes import Mode, ModeError


def test_parse_round_trips_every_kind():
    for text in ("lossless", "near-lossless:3", "near-lossless:255", "lossy:0", "lossy:4"):
        assert str(Mode.parse(text)) == text
    assert Mode.parse(" Near-Lossless:0 ") == Mode.lossless()


@pytest.mark.parametrize("text", ["", "lossy", "lossy:x", "near-lossless:-1", "near-lossless:256", "lossless:2",
                                  "jpeg"])
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


def test_wavelet_modes_parse_order_and_bound():
    assert str(Mode.parse("wavelet:120/20")) == "wavelet:120/20" and str(Mode.parse("Wavelet:7")) == "wavelet:7"
    assert Mode.parse("wavelet:120/20") == Mode.wavelet(120, 20)
    assert Mode.wavelet(120, 20).max_error_bound == 20 and Mode.wavelet(120).max_error_bound is None
    assert Mode.lossy(4) < Mode.wavelet(0) < Mode.wavelet(0, 30) < Mode.wavelet(0, 20) < Mode.wavelet(1, 20)
    assert Mode.wavelet(255, 0) < Mode.near_lossless(30), "kinds order first, as the escalation ladder climbs"
    assert Mode.wavelet(3).is_transform and Mode.lossy(3).is_transform and not Mode.near_lossless(3).is_transform
    for text in ("wavelet", "wavelet:256", "wavelet:12/", "wavelet:12/-1", "wavelet:x/3", "near-lossless:3/2"):
        with pytest.raises(ModeError):
            Mode.parse(text)
    with pytest.raises(ModeError):
        Mode("lossy", 2, 5)
