"""`medzip bench` (lab/bench.py): a real run on two small bundled files, its records, summaries and report."""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from lab import bench

REQUIRED = {"file", "frame", "modality", "bits_stored", "codec", "mode", "bpp", "ratio", "psnr", "ssim",
            "max_error", "encode_ms", "decode_ms"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    files = [get_testdata_file("CT_small.dcm"), get_testdata_file("MR_small.dcm")]
    levels = bench.codec_lossy_levels()
    modes = ["lossless", "near-lossless:1", "near-lossless:2", "near-lossless:4", "wavelet:112", "wavelet:144",
             "wavelet:176"] + ([f"lossy:{q}" for q in sorted({levels[0], levels[-1]})] if levels else [])
    result = bench.run_bench(files, json_path=out / "bench.json", plot_path=out / "bench.png", progress=False,
                             repeats=1, modes=modes)
    return result, out


def test_run_bench_writes_json_with_required_keys(run):
    result, out = run
    data = json.loads((out / "bench.json").read_text())
    assert set(data) >= {"frames", "summary", "bd_rate", "environment"}
    assert data["environment"]["anchors_unavailable"] == {}
    frames = data["frames"]
    assert {r["file"].rsplit("/", 1)[-1] for r in frames} == {"CT_small.dcm", "MR_small.dcm"}
    assert {r["modality"] for r in frames} == {"CT", "MR"}
    codecs = {r["codec"] for r in frames}
    assert codecs == {"medzip", "j2k", "jls", "jxl", "htj2k"}
    for r in frames:
        assert REQUIRED <= set(r), r
        if r["codec"] == "medzip" and r["error"] is not None:
            continue  # the codec's own tests judge it; the bench must record its failure, not crash
        assert r["error"] is None, r
        assert r["encode_ms"] > 0 and r["decode_ms"] > 0
        # bpp and ratio are two views of one size: bpp * ratio = BitsAllocated (16 for both files)
        assert r["bpp"] * r["ratio"] == pytest.approx(16.0)
        assert 0.0 <= r["ssim"] <= 1.0


def test_lossless_is_exact_and_bounds_hold(run):
    result, _ = run
    for r in result.frames:
        if r["error"] is not None:
            assert r["codec"] == "medzip" and r["bpp"] is None and r["error"]
            continue
        if r["mode"] == "lossless":
            assert r["max_error"] == 0 and r["psnr"] is None and r["ssim"] == 1.0, r
        if r["mode"].startswith("near-lossless"):
            assert r["bound_ok"] and r["max_error"] <= int(r["mode"].split(":")[1]), r
    jls = {r["mode"] for r in result.frames if r["codec"] == "jls"}
    assert jls == {"lossless", "near-lossless:1", "near-lossless:2", "near-lossless:4"}


def test_anchor_lossy_points_are_finite_and_rate_matched(run):
    result, _ = run
    lossy = [r for r in result.frames if r["codec"] in ("j2k", "jxl") and r["mode"].startswith("lossy@")]
    assert len(lossy) >= 2 * 2 * len(bench.DEFAULT_TARGET_BPP)
    for r in lossy:
        assert math.isfinite(r["psnr"]) and r["psnr"] > 0 and r["max_error"] > 0
        assert r["psnr_full_scale"] > 30 and r["psnr_full_scale"] > r["psnr"]  # the peak of the slice's range is lower
        if not r["rate_miss"]:
            assert r["bpp"] == pytest.approx(r["target_bpp"], rel=bench.RATE_MISS)
    # both anchors give a CT and an MR curve of several points
    for mod in ("CT", "MR"):
        for key in ("j2k", "jxl"):
            assert len(result.summary["curves"][mod][key]["bpp"]) >= 4


def test_summary_rows_and_jpegls_comparison(run):
    result, _ = run
    rows = {(r["codec"], r["mode"]): r for r in result.summary["rows"]}
    j2k = rows[("j2k", "lossless")]
    assert j2k["encode_vs_j2k"] == pytest.approx(1.0) and j2k["frames"] == 2
    assert rows[("jls", "lossless")]["total_bits"] == 8 * sum(
        r["bytes"] for r in result.frames if r["codec"] == "jls" and r["mode"] == "lossless")
    vs = {r["mode"]: r for r in result.summary["vs_jpegls"]}
    ours_ok = {r["mode"] for r in result.frames
               if r["codec"] == "medzip" and r["error"] is None and not r["mode"].startswith(("lossy", "wavelet"))}
    assert set(vs) == ours_ok
    if "lossless" in vs and vs["lossless"]["frames"] == 2:
        assert vs["lossless"]["jpegls_bits"] == rows[("jls", "lossless")]["total_bits"]


def _rec(codec, mode, frame, nbytes):
    return {"file": "f.dcm", "frame": frame, "modality": "CT", "codec": codec, "mode": mode, "bytes": nbytes,
            "error": None}


def test_versus_jpegls_totals_over_frames_both_coded():
    recs = [_rec("medzip", "lossless", 0, 100), _rec("medzip", "lossless", 1, 200),
            _rec("jls", "lossless", 0, 150), _rec("jls", "lossless", 1, 150),
            _rec("j2k", "lossless", 0, 160), _rec("j2k", "lossless", 1, 170),
            _rec("medzip", "near-lossless:2", 0, 90), _rec("medzip", "near-lossless:2", 1, 80),
            _rec("jls", "near-lossless:2", 0, 60), {**_rec("jls", "near-lossless:2", 1, None), "error": "boom"}]
    vs = {r["mode"]: r for r in bench.versus_jpegls(recs)}
    assert vs["lossless"] == {"mode": "lossless", "frames": 2, "medzip_bits": 2400, "jpegls_bits": 2400,
                              "ratio_to_jpegls": 1.0, "medzip_le_jpegls": True, "j2k_bits": 2640}
    nl = vs["near-lossless:2"]  # frame 1 failed under JPEG-LS: only frame 0 is compared
    assert (nl["frames"], nl["medzip_bits"], nl["jpegls_bits"], nl["medzip_le_jpegls"]) == (1, 720, 480, False)


def test_plot_is_a_png(run):
    _, out = run
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_print_summary_renders(run):
    from rich.console import Console

    result, _ = run
    console = Console(record=True, width=120)
    bench.print_summary(result, console)
    text = console.export_text()
    assert "JPEG-LS" in text and "near-lossless:4" in text and "BD-rate" in text


def test_folders_are_recursed_and_non_images_skipped(tmp_path):
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    shutil.copy(get_testdata_file("MR_small.dcm"), sub / "mr.dcm")
    shutil.copy(get_testdata_file("SC_rgb.dcm"), tmp_path / "colour.dcm")
    (tmp_path / "notes.txt").write_text("not dicom")
    result = bench.run_bench([tmp_path], modes=["lossless"], anchors=["jls"], progress=False, repeats=1)
    assert {r["file"] for r in result.frames} == {str(sub / "mr.dcm")}
    reasons = {s["file"].rsplit("/", 1)[-1]: s["reason"] for s in result.skipped}
    assert "not grayscale" in reasons["colour.dcm"] and "NotDicomError" in reasons["notes.txt"]


def test_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(bench.BenchError, match="no such"):
        bench.run_bench([tmp_path / "missing"], progress=False)
    with pytest.raises(bench.BenchError, match="no grayscale"):
        bench.run_bench([tmp_path], progress=False)
    with pytest.raises(bench.BenchError, match="unknown anchor"):
        bench.run_bench([get_testdata_file("MR_small.dcm")], anchors=["webp"], progress=False)


def test_a_frame_an_anchor_cannot_code_is_recorded_not_raised():
    frame = bench.Frame(path=bench.Path("synthetic"), index=0, modality="OT", bits_stored=20, bits_allocated=32,
                        signed=False, rescale_slope=1.0, values=np.arange(64 * 64, dtype=np.uint32).reshape(64, 64))
    for key in ("j2k", "jls", "jxl", "htj2k"):
        recs = bench._bench_anchor(frame, bench.classical.ALL_ANCHORS[key], [1], [1.0], {}, 1)
        assert recs and all("BitsStored 20" in r["error"] for r in recs)


def test_identical_frames_are_benched_once(tmp_path):
    for name in ("one.dcm", "two.dcm"):
        shutil.copy(get_testdata_file("MR_small.dcm"), tmp_path / name)
    result = bench.run_bench([tmp_path], modes=["lossless"], anchors=["jls"], progress=False, repeats=1)
    assert {r["file"] for r in result.frames} == {str(tmp_path / "one.dcm")}
    assert [s["reason"] for s in result.skipped] == ["same stored values as one.dcm[0]"]
    both = bench.run_bench([tmp_path], modes=["lossless"], anchors=["jls"], progress=False, repeats=1, dedupe=False)
    assert len({r["file"] for r in both.frames}) == 2


def test_medzip_bench_command(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from flows.cli import app

    monkeypatch.setattr(bench, "default_modes", lambda: ["lossless", "near-lossless:2"])  # keep the test short

    out = CliRunner().invoke(app, ["bench", get_testdata_file("MR_small.dcm"), "--json", str(tmp_path / "b.json"),
                                   "--plot", str(tmp_path / "b.png")])
    assert out.exit_code == 0, out.output
    assert "JPEG-LS" in out.output and "BD-rate" in out.output and "bytes at the default gate" in out.output
    assert json.loads((tmp_path / "b.json").read_text())["frames"]
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"


def test_lossy_points_and_bd_entries_when_the_codec_offers_rate_points(run):
    result, _ = run
    if not bench.codec_lossy_levels():
        pytest.skip("codec offers no lossy rate points")
    ours = [r for r in result.frames if r["codec"] == "medzip" and r["mode"].startswith("lossy:")]
    assert ours and all(r["error"] is None and r["psnr"] is not None and r["max_error"] > 0 for r in ours)
    # every lossy point of ours has the anchors coded at its rate on the same frame
    matched = {(r["file"], r["mode"]) for r in result.frames if r["mode"].startswith("lossy@lossy:")}
    assert {(r["file"], "lossy@" + r["mode"]) for r in ours} <= matched
    for mod in ("CT", "MR"):
        for key in ("j2k", "jxl"):
            entry = result.bd_rate[mod][key]
            assert (entry["error"] is None) == (entry["bd_rate_pct"] is not None and entry["bd_psnr_db"] is not None)


def test_saved_json_reloads_to_the_same_summary(run):
    result, out = run
    again = bench.load_result(out / "bench.json")
    saved = json.loads((out / "bench.json").read_text())
    assert json.loads(json.dumps(again.to_json()["summary"])) == saved["summary"]
    assert json.loads(json.dumps(again.bd_rate)) == saved["bd_rate"]


def test_bytes_at_the_default_gate_per_frame_and_per_modality(run):
    """The bench's gate section: medzip auto and each classical codec at its smallest payload passing the frame's
    default gate, totalled per modality (lab.gate_bytes)."""
    result, out = run
    assert {(r["file"], r["modality"]) for r in result.gate} == {("CT_small.dcm", "CT"), ("MR_small.dcm", "MR")}
    for r in result.gate:
        assert r["medzip"][0] > 0 and r["best_classical"] in ("jls", "j2k", "jxl")
        assert r["ratio_to_best"] == r["medzip"][0] / r[r["best_classical"]][0]
    totals = result.summary["gate"]
    assert set(totals) == {"CT", "MR"}
    for mod, t in totals.items():
        (row,) = [r for r in result.gate if r["modality"] == mod]
        assert t["medzip"] == row["medzip"][0] and t["ratio_to_best"] == row["ratio_to_best"]
    saved = json.loads((out / "bench.json").read_text())
    assert saved["gate"] == json.loads(json.dumps(result.gate))
    assert bench.load_result(out / "bench.json").summary["gate"] == totals


def test_the_wavelet_points_make_a_curve_of_their_own_with_bd_entries(run):
    result, _ = run
    ours = [r for r in result.frames if r["codec"] == "medzip" and r["mode"].startswith("wavelet:")]
    assert len(ours) == 6 and all(r["error"] is None and r["max_error"] > 0 for r in ours)
    for mod in ("CT", "MR"):
        curve = result.summary["curves"][mod]["medzip-wavelet"]
        assert curve["label"] == ["wavelet:112", "wavelet:144", "wavelet:176"]
        assert curve["bpp"] == sorted(curve["bpp"]) and curve["psnr"] == sorted(curve["psnr"])  # finer: more of both
        for key in ("j2k:wavelet", "jxl:wavelet"):
            entry = result.bd_rate[mod][key]
            assert entry["ours"] == "medzip-wavelet" and entry["points_medzip"] == 3
            assert (entry["error"] is None) == (entry["bd_rate_pct"] is not None and entry["bd_psnr_db"] is not None)


def test_bd_rate_is_the_mean_of_the_frames_not_of_mean_curves():
    """Two frames on which our curve is the anchor's own curve, at other rates: every frame's BD-rate is 0, so the
    table says 0, though the curves of mean bpp and mean PSNR (one frame easy, one hard) lie far apart."""
    import math

    from lab.bench_report import bd_table

    def rec(codec, mode, frame, bpp, psnr):
        return {"file": "f.dcm", "frame": frame, "modality": "MR", "codec": codec, "mode": mode, "bpp": bpp,
                "psnr": psnr, "error": None}

    records = []
    for frame, (a, b) in enumerate(((30.0, 8.0), (45.0, 4.0))):  # PSNR = a + b log2(bpp): two different images
        for t in (0.25, 0.5, 1.0, 1.5, 2.0, 3.0):
            records.append(rec("j2k", f"lossy@{t:g}bpp", frame, t, a + b * math.log2(t)))
        for i, bpp in enumerate((0.3, 0.45, 0.7, 1.1, 1.8, 2.6) if frame == 0 else (0.26, 0.35, 0.5, 0.62, 0.8, 0.95)):
            records.append(rec("medzip", f"wavelet:{100 + 8 * i}", frame, bpp, a + b * math.log2(bpp)))
    entry = bd_table(records)["MR"]["j2k:wavelet"]
    assert entry["error"] is None and entry["rate_frames"] == 2
    assert abs(entry["bd_rate_pct"]) < 0.5 and abs(entry["bd_psnr_db"]) < 0.05
