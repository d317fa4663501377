"""The learned lossy layer: the shipped weights loaded as a model, and a slice's latents <-> tile chunks.

Encoder side (float, any Keras backend, compiled): analysis g_a and hyper-analysis h_a choose the integer latents.
Decoder side (exact integers in numpy, codec/fixed.py): hyper-synthesis -> scale indices, synthesis -> pixels.
The encoder runs the same exact decoder-side code, so the scale indices and the reconstruction it sees are the
decoder's, bit for bit, on any backend or CPU.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from codec import entropy, fixed, tiles
from codec.errors import ModelError

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "medzip-hp-v1.npz"
BAND_LATENTS = 2048  # latents per exact synthesis call (bounds memory: about 50 kB of activations per latent)


def _compile(fn):
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, reduce_retracing=True, jit_compile=False)
    if backend == "jax":
        import jax

        return jax.jit(fn) if os.environ.get("MEDZIP_JAX_JIT", "1") != "0" else fn
    return fn


class LearnedModel:
    """One weights file loaded: float encoder networks (Keras), fixed-point decoder networks, entropy tables."""

    def __init__(self, path: Path):
        path = Path(path)
        if not path.exists():
            raise ModelError(f"codec weights not found: {path}")
        raw = path.read_bytes()
        self.sha256 = hashlib.sha256(raw).hexdigest()
        self.hash8 = bytes.fromhex(self.sha256[:16])
        with np.load(path) as d:
            arrays = {k: d[k] for k in d.files}
        self.meta = json.loads(arrays["meta_json"].tobytes())
        self.name = self.meta["name"]
        self.Q = int(self.meta["Q"])
        # rate point of the learned layer under near-lossless/lossless: the cheapest one (measured: the residual
        # layer gains less from a better reconstruction than the extra latent bits cost)
        self.residual_q = int(self.meta.get("residual_q", 0))
        self.fx = {}
        for k, v in arrays.items():
            if k.startswith("fx/") and k != "fx/inv_gain":
                _, layer, p = k.split("/")
                self.fx.setdefault(layer, {})[p] = v.astype(np.float64)
        self.inv_gain = arrays["fx/inv_gain"].astype(np.float64)
        self.tables = entropy.Tables.from_arrays(arrays)
        self.scale_l0 = int(self.meta["scale_l0"])
        self.scale_step = int(self.meta["scale_step"])
        self.levels = int(self.meta["scale_levels"])
        self._float = {k[len("float/"):]: v for k, v in arrays.items() if k.startswith("float/")}
        self._enc = None
        self._syn = None
        self._lock = threading.Lock()

    @property
    def identity(self) -> str:
        return f"{self.name}:{self.sha256[:16]}"

    # ---------- encoder networks (Keras, float) ----------
    def _encoder(self):
        """Compiled float networks, built on first use (building Keras models is slow under some backends)."""
        with self._lock:
            if self._enc is None:
                os.environ.setdefault("KERAS_BACKEND", "tensorflow")
                from keras import ops

                from codec import networks

                g_a, h_a = networks.build_analysis(), networks.build_hyper_analysis()
                networks.load_part(g_a, self._float, "g_a")
                networks.load_part(h_a, self._float, "h_a")
                gains = np.exp(self._float["rates/rates/log_gain"]).astype(np.float32)

                def analyse(x, gain):
                    return g_a(x, training=False) * gain[:, None, None, :]

                def hyper(y):
                    return h_a(y, training=False)

                self._enc = (_compile(analyse), _compile(hyper), gains, ops)
            return self._enc

    def _fast_synthesis(self):
        with self._lock:
            if self._syn is None:
                from codec import networks

                g_s = networks.build_synthesis()
                networks.load_part(g_s, self._float, "g_s")

                from keras import ops

                def synth(y, inv_gain, mask):
                    h = y * inv_gain[:, None, None, :]
                    m = mask[..., None]
                    for layer in g_s.layers[1:]:  # stage by stage, zeroing beyond the slice as fixed.synthesis
                        h = layer(h)
                        if isinstance(layer, networks.DepthToSpace):
                            m = ops.repeat(ops.repeat(m, 2, axis=1), 2, axis=2)
                        if isinstance(layer, networks.SimpleGDN):
                            h = h * m
                    return h[..., 0]

                self._inv_gains = np.exp(self._float["rates/rates/log_inv_gain"]).astype(np.float32)
                self._syn = _compile(synth)
            return self._syn

    def analyse(self, windows: np.ndarray, q: int) -> np.ndarray:
        """Pixel windows (B, S, S, 1) -> gained float latents (B, S/16, S/16, M)."""
        analyse, _, gains, ops = self._encoder()
        g = np.broadcast_to(gains[q], (windows.shape[0], gains.shape[1])).copy()
        return np.asarray(ops.convert_to_numpy(analyse(windows, g)))

    def hyper_analyse(self, y: np.ndarray) -> np.ndarray:
        _, hyper, _, ops = self._encoder()
        return np.asarray(ops.convert_to_numpy(hyper(y.astype(np.float32))))

    def synthesise_fast(self, y_windows: np.ndarray, q: int, mask: np.ndarray) -> np.ndarray:
        """Float (compiled Keras) synthesis: x_hat in [0, 1] units, (B, 16h, 16w). Not bit-exact across backends."""
        _, _, _, ops = self._encoder()
        syn = self._fast_synthesis()
        ig = np.broadcast_to(self._inv_gains[q], (y_windows.shape[0], self._inv_gains.shape[1])).copy()
        return np.asarray(ops.convert_to_numpy(syn(y_windows.astype(np.float32), ig, mask.astype(np.float32))), np.float64)

    # ---------- decoder networks (exact) ----------
    def scale_indices(self, z: np.ndarray) -> np.ndarray:
        """Integer z (B, h, w, NZ) -> scale table index of every latent (B, 4h, 4w, M), int64."""
        ls = fixed.hyper_synthesis(z, self.fx).astype(np.int64)
        idx = (ls - self.scale_l0 + self.scale_step // 2) // self.scale_step
        return np.clip(idx, 0, self.levels - 1)

    def synthesise(self, y: np.ndarray, q: int) -> np.ndarray:
        """Integer latents of a slice (hl, wl, M) -> x_hat as integers at scale 2**FA (16 hl, 16 wl), exact.

        In bands of at most BAND_LATENTS latents with DEC_MARGIN rows of context (the receptive field is 1.875
        latents), each band one fixed.synthesis_plane: the same integers as the tile windows of fixed.synthesis
        (tests/codec/test_fixed.py), without computing each tile's margins again."""
        hl, wl = y.shape[:2]
        d, s = tiles.DEC_MARGIN, tiles.STRIDE
        rows = max(1, BAND_LATENTS // max(1, wl))
        out = np.empty((hl * s, wl * s), np.int64)
        for r0 in range(0, hl, rows):
            r1 = min(hl, r0 + rows)
            a0, a1 = max(0, r0 - d), min(hl, r1 + d)
            px = fixed.synthesis_plane(y[a0:a1], self.inv_gain[q], self.fx)
            out[r0 * s : r1 * s] = px[(r0 - a0) * s : (r1 - a0) * s]
        return out


@lru_cache(maxsize=4)
def load_model(path: str | None = None) -> LearnedModel:
    path = path or os.environ.get("MEDZIP_CODEC_WEIGHTS")  # override for development and retraining
    return LearnedModel(Path(path) if path else DEFAULT_WEIGHTS)


def search_dirs() -> list[Path]:
    """Where decoding looks for the weights a payload names: the folders in MEDZIP_CODEC_WEIGHTS_PATH (os.pathsep-
    separated; decode only, e.g. a site folder of retired weights that survives a reinstall), the folder of
    MEDZIP_CODEC_WEIGHTS, then codec/weights/."""
    dirs = [Path(d) for d in os.environ.get("MEDZIP_CODEC_WEIGHTS_PATH", "").split(os.pathsep) if d]
    override = os.environ.get("MEDZIP_CODEC_WEIGHTS")
    if override:
        dirs.append(Path(override).parent)
    dirs.append(WEIGHTS_DIR)
    return dirs


@lru_cache(maxsize=64)
def _file_hash8(path: str, mtime_ns: int, size: int) -> bytes:
    return bytes.fromhex(hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16])


@lru_cache(maxsize=16)
def _model_file(path: str, mtime_ns: int, size: int) -> LearnedModel:
    return LearnedModel(Path(path))  # keyed on the file's state: a file replaced in place is loaded again


def model_for_hash(hash8: bytes) -> LearnedModel | None:
    """The model a payload names: the current weights, or another weights file kept in search_dirs(), so that
    archives written before a retrain still decode. None if no file there has that hash."""
    try:
        current = load_model()
        if current.hash8 == hash8:
            return current
    except ModelError:
        pass  # a broken current setting must not block payloads whose own weights are present
    for folder in search_dirs():
        for path in sorted(folder.glob("*.npz")) if folder.is_dir() else []:
            try:
                if not path.is_file():
                    continue
                st = path.stat()
                if _file_hash8(str(path), st.st_mtime_ns, st.st_size) != hash8:
                    continue
                model = _model_file(str(path), st.st_mtime_ns, st.st_size)
            except (OSError, ModelError, KeyError, ValueError):
                continue  # vanished, unreadable, or an npz that is not codec weights
            if model.hash8 == hash8:
                return model
    return None


def encode_latents(model: LearnedModel, x: np.ndarray, grid: tiles.Grid, q: int) -> tuple[np.ndarray, list[bytes]]:
    """Normalised slice x (H, W) float32 -> (integer latent map on the tile grid, one coded chunk per tile)."""
    win = tiles.analysis_windows(x, grid)
    y_float = model.analyse(win, q)
    y_full_f = tiles.crop_analysis(y_float, grid)
    y_full = np.round(y_full_f).astype(np.int64)
    blocks_f = np.stack([tiles.tile_latents(y_full_f, grid, k) for k in range(grid.n_tiles)])
    z = np.round(model.hyper_analyse(blocks_f)).astype(np.int64)
    idx = model.scale_indices(z)
    chunks = []
    for k in range(grid.n_tiles):
        r0, r1, c0, c1 = grid.tile_latent_box(k)
        yk = y_full[r0:r1, c0:c1]
        chunks.append(entropy.encode_tile(z[k], yk, idx[k, : r1 - r0, : c1 - c0], model.tables))
    return y_full, chunks


def decode_latents(model: LearnedModel, chunks: list[bytes], grid: tiles.Grid) -> np.ndarray:
    t = grid.t
    nr, nc = grid.tiles_shape
    zs, states = [], []
    for k in range(grid.n_tiles):
        z, st = entropy.decode_z(chunks[k], (t // 4, t // 4, model.tables.z_n.size), model.tables)
        zs.append(z)
        states.append(st)
    idx = model.scale_indices(np.stack(zs))
    y_full = np.zeros((nr * t, nc * t, idx.shape[-1]), np.int64)
    for k in range(grid.n_tiles):
        r0, r1, c0, c1 = grid.tile_latent_box(k)
        y_full[r0:r1, c0:c1] = entropy.decode_y(states[k], idx[k, : r1 - r0, : c1 - c0], model.tables)
    return y_full


def reconstruct(model: LearnedModel, y_full: np.ndarray, grid: tiles.Grid, q: int, lo: int, hi: int,
                vmin: int, vmax: int, exact: bool = True) -> np.ndarray:
    """Reconstruction of the stored values (H, W) int64 from the latent map.

    exact=True: the integer network of codec/fixed.py, bit-identical on every backend and CPU (what the residual
    layer and the checksums rely on). exact=False: the compiled float Keras synthesis, several times faster; it can
    differ from the exact result by one stored value on a few pixels between backends/CPUs.
    """
    half = 1 << (fixed.FA - 1)
    if exact:
        hl, wl = grid.latent_shape
        out = model.synthesise(y_full[:hl, :wl], q)[: grid.height, : grid.width]
        return np.clip(lo + ((out * (hi - lo) + half) >> fixed.FA), vmin, vmax)
    nr, nc = grid.tiles_shape
    T = grid.tile
    out = np.empty((nr * T, nc * T), np.float64)
    ks = list(range(grid.n_tiles))
    for s in range(0, len(ks), 16):
        part = ks[s : s + 16]
        win = tiles.synthesis_windows(y_full, grid, part)
        mask = tiles.synthesis_masks(grid, part)
        tiles.place_synthesis(model.synthesise_fast(win, q, mask), grid, part, out)
    out = out[: grid.height, : grid.width]
    v = np.floor(out * (hi - lo) + (lo + 0.5)).astype(np.int64)
    return np.clip(v, vmin, vmax)
