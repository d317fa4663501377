"""The configuration schema: one message per wrong field, paths under $MEDZIP_HOME, codec modes parsed once."""
from __future__ import annotations

import pytest

from codec.modes import Mode
from configs import Config, ConfigError, Gate, load_config
from configs.schema import CodecSettings
from quality.auto import AUTO
from quality.metrics import METRICS


def test_bad_config_names_every_wrong_field(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[codec]\nmode = "lossy:x"\n[gates.CT]\nssim_min = 3\n[runner]\nkind = "dask"\n[bogus]\n')
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    message = str(err.value)
    for field in ("codec.mode", "gates.CT.ssim_min", "runner", "bogus"):
        assert field in message, message
    assert str(bad) in message


def test_paths_follow_medzip_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDZIP_HOME", str(tmp_path / "home"))
    config = load_config()
    assert config.paths.inbox == tmp_path / "home" / "inbox"
    assert config.paths.catalog == tmp_path / "home" / "catalog.sqlite"


def test_codec_modes_are_parsed_once_into_mode_values(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[codec]\nmode = "lossy:3"\nescalate_to = "near-lossless:2"\n')
    codec = load_config(path).codec
    assert codec.mode == Mode.lossy(3) and codec.escalate_to == Mode.near_lossless(2)
    assert CodecSettings().mode == AUTO and CodecSettings().escalate_to == Mode.lossless()
    # written back as the text it was read from (a served deployment gets its config as JSON)
    dumped = Config().model_dump(mode="json")["codec"]
    assert dumped == {"mode": "auto", "escalate_to": "lossless"}
    assert CodecSettings(**{"mode": "lossy:3", "escalate_to": "lossless"}).model_dump(mode="json")["mode"] == "lossy:3"


def test_with_mode_takes_a_mode_and_keeps_the_ceiling():
    config = Config(codec=CodecSettings(mode="lossless", escalate_to="near-lossless:4"))
    changed = config.with_mode(Mode.lossy(2))
    assert changed.codec.mode == Mode.lossy(2) and changed.codec.escalate_to == Mode.near_lossless(4)


def test_every_metric_has_a_gate_threshold():
    assert {m.threshold for m in METRICS.values()} <= set(Gate.model_fields)
    assert {name for name in Gate.model_fields} == {m.threshold for m in METRICS.values()}


def test_codec_mode_auto_is_parsed_once_into_the_policy_value(tmp_path):
    from configs import load_config
    from quality.auto import AUTO

    path = tmp_path / "c.toml"
    path.write_text('[codec]\nmode = "auto"\n')
    config = load_config(path)
    assert config.codec.mode is AUTO and config.codec.model_dump()["mode"] == "auto"


def test_every_default_gate_bounds_the_max_error():
    from configs import load_config
    from quality.escalation import near_lossless_k

    config = load_config()
    assert {"default", "CT", "MR", "CR", "DX"} <= set(config.gates)
    for name, gate in config.gates.items():
        assert gate.max_error_max is not None and gate.psnr_min is not None and gate.ssim_min is not None, name
        assert near_lossless_k(gate) == min(gate.max_error_max, 2), "the K default.toml documents"
