"""Residual layer, stream versions 2-5: raster order with per-image and self-correcting prediction, by wavefronts.

A pixel's prediction mixes an integer combination of 12 causal decoded neighbours (weights summing to exactly
2**SHIFT, fitted by the encoder with L1 reweighted least squares on a sample and sent in the stream, so flat regions
are predicted exactly; codec/raster_fit.py) with five fixed predictors, each weighted by its recent errors around the pixel
(codec/raster_kernels.py). The residual r = value - prediction is quantised with step 2k+1 as in version 1
(|value - decoded| <= k everywhere, k = 0 exact) and coded with constriction's range coder: a token per pixel from
per-context adaptive integer counts (contexts: local activity in half octaves), the token's low bits raw. Version 3
codes the same walk with richer contexts: the neighbours' residual signs split the activity
contexts (with a back-off prior) and flip q, and the sign is a symbol of its own (codec/raster_kernels3.py); its
predictor may also have one weight set per intensity class. Version 4 (for near-lossless slices constant on some
8×8 blocks) is version 3 plus those blocks coded with step 1, each pixel predicted from
a decoded neighbour in an exact block, so they decode exactly at any k (constant_blocks says why). Version 5 (what
new streams are) is version 4's walk where k > 0 and a block is constant, else version 3's, under the compact
header of codec/residual_header.py. Version 1 streams (codec/residual.py) keep decoding.

Stream versions 2-4: header (magic MZR2, MZR3 or MZR4, k, bits, signed, rows, cols, base, the value above the first
row (the first pixel's), CRC-32 of the recon and of the decoded values, the number of weight sets), the fitted
weights (one set, or one per pixel parity class for interleaved or upsampled images, or (version 3 on) three
intensity class sets followed by their two thresholds), (version 4) the byte length and zlib data of the exact block
map (np.packbits, row-major), then the range coder's words. The reconstruction under it is flat (every pixel the
base value), which is what payloads without latents carry.
"""
from __future__ import annotations

import struct
import zlib

import constriction
import numpy as np

from codec import raster_kernels as K
from codec import raster_kernels3 as K3
from codec import residual_header as RH
from codec import residual_mixed as RM
from codec.errors import ResidualError
from codec.raster_fit import INTENSITY_CLASSES, Predictor, fit_predictor, fit_weights  # noqa: F401 (re-exported)
from codec.values import check_fits, value_range

MAGIC = b"MZR2"
MAGIC3 = b"MZR3"
MAGIC4 = b"MZR4"
_MAGICS = {MAGIC: 2, MAGIC3: 3, MAGIC4: 4, RH.MAGIC5: 5}
_MAGIC_OF = {version: magic for magic, version in _MAGICS.items()}
_HEAD = struct.Struct("<4sIBBIIqqIIB")  # magic, k, bits, signed, rows, cols, base, top, recon crc, decoded crc, sets
_WEIGHTS = struct.Struct(f"<{K.N_NEIGHBOURS}i")  # one weight set; the header says how many follow
_THRESHOLDS = struct.Struct(f"<{INTENSITY_CLASSES - 1}q")  # after the weights of intensity class sets (version 3, 4)
_SETS = {2: (1, 4), 3: (1, 4, INTENSITY_CLASSES), 4: (1, 4, INTENSITY_CLASSES),  # weight set counts per version
         5: (1, 4, INTENSITY_CLASSES)}
EXACT_BLOCK = 8  # version 4: the side of the blocks that are coded exactly where the slice is constant on them
_MAP_LEN = struct.Struct("<I")


def is_raster_stream(data: bytes) -> bool:
    return bytes(data[:4]) in _MAGICS


def _crc(a: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(a, dtype="<i8").tobytes())


def weight_sets(data: bytes) -> int:
    """How many weight sets a raster stream carries: 4 says the slice has a pixel-parity structure."""
    data = bytes(data)
    if data[:4] == RH.MAGIC5:
        return len(RH.parse(data, K.N_NEIGHBOURS, INTENSITY_CLASSES)[0].weights)
    return _HEAD.unpack_from(data)[-1]


class _Walk:
    """What encoder and decoder both hold while walking the wavefronts."""

    def __init__(self, shape: tuple[int, int], k: int, bits: int, signed: bool, top: int, version: int = 2,
                 exact: np.ndarray | None = None):
        self.version = version
        self.fine = np.zeros(shape, np.uint8) if exact is None else _expand(exact, shape)
        self.rows, self.cols = shape
        self.k, self.step = k, 2 * k + 1
        self.lo, self.hi = value_range(bits, signed, ResidualError)
        self.top = top
        self.P = np.full((self.rows + K.PAD, self.cols + 2 * K.PAD), top, np.int64)
        self.E = np.zeros_like(self.P)
        self.ES = np.zeros(self.P.shape + (K.N_SUB,), np.int64)  # a pixel's sub-predictor errors side by side
        alphabet = K.n_tokens(bits + 1 if version == 2 else bits)  # version 3 codes |q|, version 2 the folded q
        self.counts = np.zeros((K.N_CTX, alphabet), np.int64)  # version 3: pooled over the sign states
        self.table = np.zeros((K.N_CTX, alphabet), np.float64)
        self.dirty = np.ones(K.N_CTX, np.bool_)
        m = min(self.rows, (self.cols + 1) // 2) + 1
        self.pred, self.ctx, self.q, self.tok, self.nraw, self.raw = (np.zeros(m, np.int64) for _ in range(6))
        self.rows_buf = np.zeros((m, alphabet), np.float64)
        self.sub = np.zeros((m, K.N_SUB), np.int64)
        self.sizes, self.bits = np.zeros(m, np.int32), np.zeros(m, np.int32)
        self.categorical = constriction.stream.model.Categorical(perfect=False)
        self.uniform = constriction.stream.model.Uniform()
        if version >= 3:
            self.tab_a = np.zeros((K.N_CTX, alphabet), np.int64)
            self.tab_sum = np.ones(K.N_CTX, np.int64)
            self.counts3 = np.zeros((K.N_CTX * K3.N_STATE, alphabet), np.int64)
            self.table3 = np.zeros_like(self.counts3)
            self.dirty3 = np.ones(K.N_CTX * K3.N_STATE, np.bool_)
            self.rebuilt = np.zeros(K.N_CTX, np.bool_)
            self.SQ = np.zeros((3, self.rows + 1), np.int64)  # signed q of the last 3 wavefronts by row
            self.state, self.flip, self.neg, self.sctx = (np.zeros(m, np.int64) for _ in range(4))
            self.symbols = np.zeros(m, np.int32)
            self.srows = np.zeros((m, 2), np.float64)
            self.scounts = np.zeros((K3.N_SIGN_CTX, 2), np.int64)
            self.n_signs = 0

    def wavefronts(self) -> range:
        return range(K.n_wavefronts(self.rows, self.cols))

    def predict(self, t: int, predictor: Predictor) -> int:
        K.start(t, self.P, self.rows, self.top)
        n = K.predict(t, self.P, self.E, self.ES, self.rows, self.cols, self.step, predictor.weights,
                      predictor.thresholds, self.lo, self.hi, self.pred, self.sub, self.ctx)
        if self.version >= 3:
            K3.sign_state(t, self.SQ, self.rows, self.cols, n, self.state, self.flip)
        if self.version == 4:
            K3.exact_prediction(t, self.P, self.fine, self.rows, self.cols, n, self.pred)
        return n

    def quantise(self, t: int, v: np.ndarray, n: int) -> int:
        if self.version == 2:
            return K.quantise(t, v, self.rows, self.cols, self.k, self.step, self.pred, n, self.q, self.tok,
                              self.nraw, self.raw)
        return K3.quantise(t, v, self.rows, self.cols, self.k, self.step, self.pred, self.flip, self.fine, n, self.q,
                           self.tok, self.nraw, self.raw, self.neg)

    def commit(self, t: int) -> None:
        K.commit(t, self.P, self.E, self.ES, self.rows, self.cols, self.step, self.lo, self.hi, self.q, self.pred,
                 self.sub, self.ctx, self.counts, self.dirty, self.tok, self.fine)
        if self.version >= 3:
            K3.commit(t, self.SQ, self.rows, self.cols, self.q, self.ctx, self.state, self.tok, self.counts3,
                      self.dirty3, self.sctx, self.symbols, self.n_signs, self.scounts)
        K.finish(t, self.P, self.rows, self.cols)

    def probabilities(self, n: int) -> np.ndarray:
        if self.version == 2:
            K.probability_rows(self.counts, self.table, self.dirty, self.ctx, n, self.rows_buf)
        else:
            K3.probability_rows(self.counts3, self.counts, self.tab_a, self.tab_sum, self.table3, self.dirty3,
                                self.dirty, self.rebuilt, self.ctx, self.state, n, self.rows_buf)
        return self.rows_buf[:n]

    def sign_rows(self, n: int) -> np.ndarray:
        """Version 3, after the wavefront's tokens: the distributions of its signs (one per non-zero value)."""
        self.n_signs = K3.sign_rows(self.tok, self.state, self.ctx, n, self.scounts, self.sctx, self.srows)
        return self.srows[: self.n_signs]

    def encode_signs(self, enc, n: int) -> None:
        rows = self.sign_rows(n)
        if len(rows):
            K3.signs_out(self.tok, self.neg, n, self.symbols)
            enc.encode(self.symbols[: len(rows)], self.categorical, rows)

    def decode_signs(self, dec, n: int) -> None:
        rows = self.sign_rows(n)
        if len(rows):
            self.symbols[: len(rows)] = dec.decode(self.categorical, rows)
        K3.signs_in(self.tok, self.symbols, n, self.neg)

    def encode_raw(self, enc, n: int, most: int) -> None:
        for lo in range(0, most, K.RAW_CHUNK):
            m = K.raw_chunk(self.nraw, self.raw, n, lo, self.sizes, self.bits)
            enc.encode(self.bits[:m], self.uniform, self.sizes[:m])

    def decode_raw(self, dec, n: int, most: int) -> None:
        self.raw[:n] = 0
        for lo in range(0, most, K.RAW_CHUNK):
            m = K.raw_chunk_sizes(self.nraw, n, lo, self.sizes)
            K.raw_chunk_put(self.nraw, n, lo, dec.decode(self.uniform, self.sizes[:m]), self.raw)

    def decoded(self) -> np.ndarray:
        return self.P[K.PAD:, K.PAD : K.PAD + self.cols]


def encode_residual(values: np.ndarray, recon: np.ndarray, k: int, bits_stored: int, signed: bool,
                    predictor: Predictor | np.ndarray | None = None, version: int | None = None,
                    mixed: bool | None = None, mixer: int = RM.MODEL) -> bytes:
    """Code `values` over the flat `recon` so that decoding keeps |values - decoded| <= k everywhere, with the
    `predictor` (fitted to the values when None; a probe of a crop passes the whole slice's; bare weight sets are
    taken as one set or four parity sets), as a stream of `version`: None = 5 (version 4's walk where k > 0 and the
    slice is constant on some EXACT_BLOCK² blocks, else version 3's, under the compact header of
    codec/residual_header.py); 2, 3 or 4 exactly, for measurements against each other and old streams. `mixed`:
    version 5 with the context-mixed coder (codec/residual_mixed.py) in place of the range coder; None: where the
    slice has at most RM.MAX_PIXELS pixels. `mixer`: its model (new streams: the latest; 1 re-makes older ones)."""
    return encode_residual_decoded(values, recon, k, bits_stored, signed, predictor, version, mixed, mixer)[0]


def encode_residual_decoded(values: np.ndarray, recon: np.ndarray, k: int, bits_stored: int, signed: bool,
                            predictor: Predictor | np.ndarray | None = None, version: int | None = None,
                            mixed: bool | None = None, mixer: int = RM.MODEL) -> tuple[bytes, np.ndarray]:
    """encode_residual's stream and the values it decodes to (the walk's own reconstruction)."""
    if version not in (None, *_SETS):
        raise ResidualError(f"no raster residual stream version {version!r}")
    base = _check(values, recon, k, bits_stored, signed)
    v = np.ascontiguousarray(values, dtype=np.int64)
    compact = version in (None, 5)
    if mixed is None:
        mixed = compact and values.size <= RM.MAX_PIXELS
    if mixed and not compact:
        raise ResidualError(f"the context-mixed coder is a version 5 stream, not version {version}")
    exact = constant_blocks(v) if version == 4 or (compact and k > 0) else None
    if compact:
        version = 4 if exact is not None and exact.any() else 3
    if predictor is None:
        predictor = fit_predictor(v, k, intensity=version >= 3)
    elif not isinstance(predictor, Predictor):
        predictor = Predictor(np.asarray(predictor, np.int64))
    sets, by_level = len(predictor.weights), bool(predictor.thresholds.size)
    if sets not in _SETS[version] or by_level != (version >= 3 and sets == INTENSITY_CLASSES):
        raise ResidualError(f"stream version {version} cannot carry this predictor ({len(predictor.weights)} sets)")
    weights = predictor.weights
    top = int(v[0, 0])
    st = _Walk(v.shape, k, bits_stored, signed, top, version, exact if version == 4 else None)
    words = RM.encode_walk(st, v, predictor, mixer) if mixed else _range_coded(st, v, predictor, version)
    decoded = st.decoded().copy()
    bound = int(np.abs(decoded - v).max())
    if bound > k:  # cannot happen by construction; refuse rather than return a stream that breaks the bound
        raise AssertionError(f"residual layer broke its bound: max error {bound} > k={k}")
    if compact:
        packed = zlib.compress(np.packbits(exact).tobytes(), 9) if version == 4 else None
        head = RH.Compact(k, bits_stored, bool(signed), *v.shape, base, top, _crc(decoded), weights,
                          predictor.thresholds, packed, mixer if mixed else 0)
        return RH.pack(head) + words, decoded
    head = _HEAD.pack(_MAGIC_OF[version], k, bits_stored, int(signed), *v.shape, base, top, _crc(recon), _crc(decoded),
                      len(weights))
    sets = b"".join(_WEIGHTS.pack(*w.tolist()) for w in weights)
    if predictor.thresholds.size:
        sets += _THRESHOLDS.pack(*predictor.thresholds.tolist())
    if version == 4:
        packed = zlib.compress(np.packbits(exact).tobytes(), 9)
        sets += _MAP_LEN.pack(len(packed)) + packed
    return head + sets + words, decoded


def _range_coded(st: _Walk, v: np.ndarray, predictor: Predictor, version: int) -> bytes:
    enc = constriction.stream.queue.RangeEncoder()
    for t in st.wavefronts():
        n = st.predict(t, predictor)
        most = st.quantise(t, v, n)
        enc.encode(st.tok[:n].astype(np.int32), st.categorical, st.probabilities(n))
        if version >= 3:
            st.encode_signs(enc, n)
        st.encode_raw(enc, n, most)
        st.commit(t)
    return enc.get_compressed().astype("<u4").tobytes()


def decode_residual(data: bytes, recon: np.ndarray, k: int, bits_stored: int, signed: bool) -> np.ndarray:
    """Inverse of encode_residual given the same recon, k, bits_stored and signed (int64 array)."""
    data = bytes(data)
    mixed = 0
    if data[:4] == RH.MAGIC5:
        version, predictor, exact, top, crc_dec, body, mixed = _read_compact(data, recon, k, bits_stored, signed)
    else:
        version, predictor, exact, top, crc_dec, body = _read_fixed(data, recon, k, bits_stored, signed)
    rows, cols = recon.shape
    if len(body) % 4 and not mixed:
        raise ResidualError("residual stream truncated or corrupted (length not a whole number of words)")
    lo, hi = value_range(bits_stored, signed, ResidualError)
    if not lo <= top <= hi:
        raise ResidualError("residual stream corrupted: first value outside the range")
    st = _Walk((rows, cols), k, bits_stored, signed, top, version, exact)
    if mixed:
        RM.decode_walk(st, predictor, body, mixed)
        return _checked(st.decoded().copy(), crc_dec)
    dec = constriction.stream.queue.RangeDecoder(np.frombuffer(body, dtype="<u4").astype(np.uint32))
    try:
        for t in st.wavefronts():
            n = st.predict(t, predictor)
            st.tok[:n] = dec.decode(st.categorical, st.probabilities(n))
            if version >= 3:
                st.decode_signs(dec, n)
            st.decode_raw(dec, n, K.raw_sizes(st.tok, n, st.nraw))
            if version == 2:
                K.unquantise(st.tok, st.raw, n, st.q)
            else:
                K3.unquantise(st.tok, st.raw, st.neg, st.flip, n, st.q)
            st.commit(t)
    except Exception as exc:  # the range decoder tripping over corrupted data
        raise ResidualError(f"residual stream corrupted: {exc}") from None
    return _checked(st.decoded().copy(), crc_dec)


def _checked(decoded: np.ndarray, crc_dec: int) -> np.ndarray:
    if _crc(decoded) != crc_dec:
        raise ResidualError("residual stream corrupted or decoded with another recon: decoded values fail their CRC")
    return decoded


def constant_blocks(values: np.ndarray) -> np.ndarray:
    """Version 4's map: which whole EXACT_BLOCK² blocks (row-major, partial blocks at the edges left out) hold one
    value. Coded with step 1, they decode exactly; at step 2k + 1 a constant region entered from a textured one
    keeps the entry's error (up to k) as it is predicted from itself: on a radiograph's collimated border (RG2, 30 %
    of the slice) that drift cost 2 dB PSNR and 0.02-0.04 SSIM at k = 4-6 (lab/exact_blocks.py)."""
    b = EXACT_BLOCK
    r, c = values.shape[0] // b, values.shape[1] // b
    blocks = np.asarray(values)[: r * b, : c * b].reshape(r, b, c, b)
    return (blocks.max(axis=(1, 3)) == blocks.min(axis=(1, 3))).astype(np.uint8)


def _expand(exact: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The per-pixel mask of a block map."""
    fine = np.zeros(shape, np.uint8)
    r, c = exact.shape
    fine[: r * EXACT_BLOCK, : c * EXACT_BLOCK] = np.kron(exact, np.ones((EXACT_BLOCK, EXACT_BLOCK), np.uint8))
    return fine


def _read_exact(body: bytes, shape: tuple[int, int]) -> tuple[np.ndarray, bytes]:
    """Version 4: the block map after the predictor, and the range coder's bytes after it."""
    if len(body) < _MAP_LEN.size:
        raise ResidualError("residual stream truncated (no exact block map)")
    (size,) = _MAP_LEN.unpack_from(body)
    end = _MAP_LEN.size + size
    if len(body) < end:
        raise ResidualError("residual stream corrupted (exact block map of the wrong size)")
    return _inflate_exact(body[_MAP_LEN.size : end], shape), body[end:]


def _inflate_exact(zdata: bytes, shape: tuple[int, int]) -> np.ndarray:
    r, c = shape[0] // EXACT_BLOCK, shape[1] // EXACT_BLOCK
    want = (r * c + 7) // 8
    try:
        inflater = zlib.decompressobj()
        packed = inflater.decompress(zdata, want + 1)
    except zlib.error as exc:
        raise ResidualError(f"residual stream corrupted (exact block map: {exc})") from None
    if len(packed) != want or not inflater.eof or inflater.unused_data:
        raise ResidualError("residual stream corrupted (exact block map of the wrong size)")
    return np.unpackbits(np.frombuffer(packed, np.uint8), count=r * c).reshape(r, c)


def _mismatch(k_s: int, bits_s: int, signed_s: bool, shape: tuple[int, int], k: int, bits: int, signed: bool,
              recon: np.ndarray) -> None:
    if (k_s, bits_s, bool(signed_s), shape) != (k, bits, bool(signed), recon.shape):
        raise ResidualError(
            f"stream was coded with k={k_s}, bits={bits_s}, signed={bool(signed_s)}, shape={shape}; "
            f"decoder was given k={k}, bits={bits}, signed={signed}, shape={recon.shape}")


def _read_fixed(data: bytes, recon: np.ndarray, k: int, bits: int, signed: bool):
    """Versions 2-4: (walk version, predictor, exact block map or None, top, decoded CRC, coder bytes)."""
    if len(data) < _HEAD.size + _WEIGHTS.size:
        raise ResidualError(f"residual stream truncated: {len(data)} bytes")
    magic, k_s, bits_s, signed_s, rows, cols, base, top, crc_rec, crc_dec, n_sets = _HEAD.unpack_from(data)
    if magic not in _MAGICS:
        raise ResidualError(f"not a raster residual stream (magic {magic!r})")
    version = _MAGICS[magic]
    _mismatch(k_s, bits_s, signed_s, (rows, cols), k, bits, signed, recon)
    if _check(None, recon, k, bits, signed) != base or _crc(recon) != crc_rec:
        raise ResidualError("recon differs from the one the residual was coded against")
    predictor, body = _read_predictor(data, version, n_sets)
    exact = None
    if version == 4:
        exact, body = _read_exact(body, (rows, cols))
    return version, predictor, exact, top, crc_dec, body


def _read_compact(data: bytes, recon: np.ndarray, k: int, bits: int, signed: bool):
    """Version 5 (codec/residual_header.py): as _read_fixed, for the walk of version 4 or 3 it names, and the
    context-mixer model that coded it (0: the range coder)."""
    h, body = RH.parse(data, K.N_NEIGHBOURS, INTENSITY_CLASSES)
    _mismatch(h.k, h.bits, h.signed, (h.rows, h.cols), k, bits, signed, recon)
    if _check(None, recon, k, bits, signed) != h.base:
        raise ResidualError("recon differs from the one the residual was coded against")
    if np.any(np.diff(h.thresholds) <= 0):
        raise ResidualError("residual stream corrupted: intensity thresholds out of order")
    exact = None if h.exact_map is None else _inflate_exact(h.exact_map, recon.shape)
    return (3 if exact is None else 4), Predictor(h.weights, h.thresholds), exact, h.top, h.crc_decoded, body, h.mixed


def _read_predictor(data: bytes, version: int, n_sets: int) -> tuple[Predictor, bytes]:
    """The weight sets (and intensity thresholds) after the header, and the range coder's bytes after them."""
    at = _HEAD.size + n_sets * _WEIGHTS.size
    by_level = version >= 3 and n_sets == INTENSITY_CLASSES
    end = at + (_THRESHOLDS.size if by_level else 0)
    if n_sets not in _SETS[version] or len(data) < end:
        raise ResidualError(f"residual stream corrupted: {n_sets} weight sets")
    weights = np.array([_WEIGHTS.unpack_from(data, _HEAD.size + n * _WEIGHTS.size) for n in range(n_sets)], np.int64)
    thresholds = np.array(_THRESHOLDS.unpack_from(data, at) if by_level else (), np.int64)
    if np.any(np.diff(thresholds) <= 0):
        raise ResidualError("residual stream corrupted: intensity thresholds out of order")
    return Predictor(weights, thresholds), data[end:]


def _check(values: np.ndarray | None, recon: np.ndarray, k: int, bits_stored: int, signed: bool) -> int:
    """Validate the inputs; returns the flat recon's value (the base)."""
    if not isinstance(k, (int, np.integer)) or k < 0:
        raise ResidualError(f"k must be an integer >= 0, got {k!r}")
    recon = np.asarray(recon)
    if recon.ndim != 2 or recon.size == 0 or not np.issubdtype(recon.dtype, np.integer):
        raise ResidualError(f"recon must be a non-empty 2-D integer array, got {recon.dtype} {recon.shape}")
    base = int(recon.flat[0])
    if not np.all(recon == base):
        raise ResidualError("the version 2 residual layer codes over a flat reconstruction only")
    lo, hi = value_range(bits_stored, signed, ResidualError)
    if not lo <= base <= hi:
        raise ResidualError(f"recon value {base} outside the {bits_stored}-bit range")
    if values is not None:
        if values.shape != recon.shape:
            raise ResidualError(f"values shape {values.shape} differs from recon shape {recon.shape}")
        check_fits(values, bits_stored, signed, ResidualError)
    return base
