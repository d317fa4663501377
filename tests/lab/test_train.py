"""`lab.train`: seeded runs repeat exactly, the JAX backend trains too (a GPU machine may have no TensorFlow),
and what a run exports is a working codec. A few steps on one real CT slice, each run in its own process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from codec import api, learned
from quality import metrics
from lab.train import load_float_weights

ROOT = Path(__file__).resolve().parents[2]
CT_SMALL = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"


def _train(out: Path, backend: str, seed: int = 5, steps: int = 3, cli: bool = False, lr: str = "0.001") -> Path:
    """`python -m lab.train OUT FILE ...`, or the same run through `medzip train FILE --out OUT ...`."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2", "JAX_PLATFORMS": "cpu"}
    where = ["-m", "flows.cli", "train", str(CT_SMALL), "--out", str(out)] if cli else \
        ["-m", "lab.train", str(out), str(CT_SMALL)]
    cmd = [sys.executable, *where, "--steps", str(steps), "--seed", str(seed), "--lr", lr,
           "--init", str(learned.DEFAULT_WEIGHTS)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def _floats(path: Path) -> dict:
    with np.load(path) as d:
        return {k: d[k] for k in d.files}


@pytest.fixture(scope="module")
def shipped_floats():
    return load_float_weights(learned.DEFAULT_WEIGHTS)


def test_same_seed_same_weights_under_tensorflow(tmp_path, shipped_floats):
    a = _floats(_train(tmp_path / "a", "tensorflow") / "float_weights.npz")
    b = _floats(_train(tmp_path / "b", "tensorflow", cli=True) / "float_weights.npz")  # medzip train, same run
    assert a.keys() == b.keys() == shipped_floats.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert any(not np.array_equal(a[k], shipped_floats[k]) for k in a)  # the steps did move the weights
    meta = json.loads((tmp_path / "a" / "train_meta.json").read_text())
    assert meta["steps_done"] == 3 and meta["backend"] == "tensorflow" and meta["init_weights"]["sha256"]


def test_jax_backend_trains_and_exports_a_working_codec(tmp_path, shipped_floats, monkeypatch):
    out = _train(tmp_path / "jax", "jax", lr="1e-5")  # Adam's first steps at 1e-3 cost ~7 dB on any backend
    trained = _floats(out / "float_weights.npz")
    assert trained.keys() == shipped_floats.keys()
    assert all(np.isfinite(v).all() for v in trained.values())
    assert any(not np.array_equal(trained[k], shipped_floats[k]) for k in trained)
    assert json.loads((out / "train_meta.json").read_text())["backend"] == "jax"

    frame = pydicom.dcmread(CT_SMALL).pixel_array
    shipped_psnr = metrics.psnr(frame, api.decode(api.encode(frame, "lossy:4", 16, True)), 16)
    monkeypatch.setenv("MEDZIP_CODEC_WEIGHTS", str(out / "medzip-hp-v1.npz"))
    learned.load_model.cache_clear()
    try:
        payload = api.encode(frame, "lossless", 16, True)
        assert api.payload_info(payload)["model_hash"] is None  # no latents: no model needed to decode it
        lossy = api.encode(frame, "lossy:4", 16, True)
        assert api.payload_info(lossy)["model_hash"] == learned.load_model().sha256[:16]
        assert np.array_equal(api.decode(payload), frame)
        # three tiny steps from the shipped weights: a faithful export codes about as well as they do
        trained_psnr = metrics.psnr(frame, api.decode(lossy), 16)
        assert abs(trained_psnr - shipped_psnr) < 1.0, (trained_psnr, shipped_psnr)
    finally:
        monkeypatch.delenv("MEDZIP_CODEC_WEIGHTS")
        learned.load_model.cache_clear()
