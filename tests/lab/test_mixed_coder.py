"""lab.mixed_coder: the context-mixed coder's rows are real streams of both coders, on a real slice."""
from codec import residual_raster as R
from lab import mixed_coder
from lab.realdata import find
from tests.helpers.slices import flat, real_slice


def test_a_row_per_k_with_the_bytes_of_each_coder():
    rows = mixed_coder.row(find("MR_small.dcm"), (0, 2), rounds=1)
    assert [r["k"] for r in rows] == [0, 2] and all(r["modality"] == "MR" for r in rows)
    v, bits, signed = real_slice("MR_small.dcm")
    for r in rows:
        assert r["mixed"] == len(R.encode_residual(v, flat(v), r["k"], bits, signed, mixed=True))
        assert r["range"] == len(R.encode_residual(v, flat(v), r["k"], bits, signed, mixed=False))
        assert r["mixed1"] == len(R.encode_residual(v, flat(v), r["k"], bits, signed, mixed=True, mixer=1))
        assert r["mixed"] < r["mixed1"] < r["range"] < r["v2"] and r["jls"] > 0
        assert min(r["ms_range"], r["ms_mixed1"], r["ms_mixed"]) > 0
