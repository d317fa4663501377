"""lab.gate_bytes: every codec's reported payload really passes the gate it was searched for."""
from codec import api
from codec.modes import Mode
from configs import load_config
from lab import anchors, gate_bytes
from quality import metrics
from quality.gates import gate_failures
from lab.frames import frames_of, instance
from lab.realdata import find


def test_each_reported_payload_is_the_smallest_found_that_passes():
    config = load_config()
    path = find("CT_small.dcm")
    row = gate_bytes.measure(path, config)
    assert row["modality"] == "CT" and row["medzip"][1].startswith("near-lossless:")
    for key in ("jls", "j2k", "jxl"):
        assert row[key] is not None and row[key][0] > 0
    best = min(row[k][0] for k in ("jls", "j2k", "jxl"))
    assert row["ratio_to_best"] == row["medzip"][0] / best
    # the reported picks really pass: decode them again and judge them by the same gate
    frame = next(frames_of(instance(path)[0]))
    gate = config.gate_for("CT")
    jls = anchors.available()["jls"]
    setting = anchors.AnchorSetting.near_lossless(int(row["jls"][1].split(":")[1]))
    payload = jls.encode(frame.values, frame.bits_stored, frame.signed, setting)
    assert len(payload) == row["jls"][0]
    decoded = jls.decode(payload, frame.bits_stored, frame.signed, frame.values.dtype)
    assert not gate_failures(metrics.figures(frame.values, decoded, frame.bits_stored), gate)
    ours = api.encode(frame.values, Mode.parse(row["medzip"][1]), frame.bits_stored, frame.signed)
    assert len(ours) == row["medzip"][0]
    assert not gate_failures(metrics.figures(frame.values, api.decode(ours), frame.bits_stored), gate)
