"""codec/learned.py: the shipped weights load as a model, latents round-trip through their tile chunks, and a stream
encoded under the TensorFlow backend decodes to the identical array under the JAX backend, and the other way round
(both CPU). Each side runs in its own process with KERAS_BACKEND set, since Keras picks its backend
once per process. The JAX side really runs the Keras model (the encoder's analysis transforms) under JAX."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from codec import learned, tiles

ROOT = Path(__file__).resolve().parents[2]
MODES = ("lossy:0", "lossy:4", "near-lossless:2", "lossless")

def test_shipped_weights_load_and_name_themselves():
    model = learned.load_model()
    assert model.identity == f"{model.name}:{model.sha256[:16]}" and model.hash8 == bytes.fromhex(model.sha256[:16])
    assert 0 <= model.residual_q < model.Q
    assert learned.model_for_hash(model.hash8) is model
    assert learned.model_for_hash(b"\0" * 8) is None
    assert learned.search_dirs()[-1] == learned.WEIGHTS_DIR


def test_latents_round_trip_through_their_chunks_and_reconstruct_exactly():
    model = learned.load_model()
    yy, xx = np.mgrid[0:100, 0:140]
    x = (0.5 + 0.4 * np.sin(xx / 7.0) * np.cos(yy / 11.0)).astype(np.float32)
    grid = tiles.Grid(100, 140, 64)
    y_full, chunks = learned.encode_latents(model, x, grid, 2)
    assert len(chunks) == grid.n_tiles
    assert np.array_equal(learned.decode_latents(model, chunks, grid), y_full)
    a = learned.reconstruct(model, y_full, grid, 2, 0, 4095, 0, 4095)
    b = learned.reconstruct(model, y_full, grid, 2, 0, 4095, 0, 4095)
    assert a.shape == (100, 140) and a.dtype == np.int64 and np.array_equal(a, b)
    assert np.abs(a - x * 4095).mean() < 0.05 * 4095  # a recognisable picture of the slice, not noise


_SCRIPT = r"""
import sys, numpy as np, pydicom, keras
from pathlib import Path
from codec import api
assert keras.backend.backend() == sys.argv[1], keras.backend.backend()
out = Path(sys.argv[2])
ds = pydicom.dcmread(sys.argv[3])
v = ds.pixel_array[128:320, 96:352]  # a 192x256 crop of a real CT slice: two tiles of 128
bits, signed = int(ds.BitsStored), bool(ds.PixelRepresentation)
np.save(out / "values.npy", v)
modes = sys.argv[4].split(",")
for m in modes:  # encode with this backend
    (out / f"{sys.argv[1]}_{m.replace(':', '_')}.bin").write_bytes(api.encode(v, m, bits, signed, tile=128))
for f in sorted(out.glob("*.bin")):  # decode whatever is there (the other backend's streams included)
    np.save(out / f"dec_{sys.argv[1]}_{f.stem}.npy", api.decode(f.read_bytes()))
"""


def _run(backend: str, tmp: Path, ct: Path):
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT),
           "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""}
    r = subprocess.run([sys.executable, "-c", _SCRIPT, backend, str(tmp), str(ct), ",".join(MODES)],
                       env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, f"{backend} side failed:\n{r.stderr[-3000:]}"


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax not installed (pip install -e .[test])")
def test_tensorflow_and_jax_decode_each_others_streams_identically(tmp_path):
    import pydicom

    ct = Path(pydicom.__file__).parent.parent / "data_store" / "data" / "693_UNCR.dcm"
    _run("tensorflow", tmp_path, ct)  # TF encodes, decodes its own
    _run("jax", tmp_path, ct)  # JAX encodes, decodes both
    _run("tensorflow", tmp_path, ct)  # TF decodes JAX's streams (and re-encodes: same bytes expected below)
    v = np.load(tmp_path / "values.npy")
    for m in MODES:
        tag = m.replace(":", "_")
        for enc in ("tensorflow", "jax"):
            a = np.load(tmp_path / f"dec_tensorflow_{enc}_{tag}.npy")
            b = np.load(tmp_path / f"dec_jax_{enc}_{tag}.npy")
            assert a.dtype == b.dtype == v.dtype
            assert np.array_equal(a, b), f"{m} stream from {enc}: TF and JAX decodes differ"
        if m == "lossless":
            assert np.array_equal(a, v)
        elif m.startswith("near-lossless"):
            assert np.abs(a.astype(np.int64) - v).max() <= 2
