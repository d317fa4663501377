"""codec/values.py: the one stored-value range and the one check that a frame fits it."""
from __future__ import annotations

import numpy as np
import pytest

from codec.errors import CodecError, ResidualError
from codec.values import check_fits, value_range


@pytest.mark.parametrize("bits,signed,expect", [(1, False, (0, 1)), (12, False, (0, 4095)), (12, True, (-2048, 2047)),
                                                (16, True, (-32768, 32767)), (32, False, (0, 2**32 - 1))])
def test_value_range(bits, signed, expect):
    assert value_range(bits, signed) == expect


def test_bad_depths_raise_the_callers_error():
    with pytest.raises(CodecError, match="1..32"):
        value_range(0, False)
    with pytest.raises(ResidualError):
        value_range(33, True, ResidualError)


def test_check_fits_names_the_values_and_the_range():
    assert check_fits(np.array([[0, 4095]]), 12, False) == (0, 4095)
    with pytest.raises(CodecError, match=r"values -1\.\.4095 exceed the BitsStored=12 unsigned range 0\.\.4095"):
        check_fits(np.array([[-1, 4095]]), 12, False)
    with pytest.raises(ValueError, match="exceed"):
        check_fits(np.array([[2048]]), 12, True, ValueError)
