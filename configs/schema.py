"""The configuration schema. One message per wrong field, naming the field and the file."""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from codec.modes import Mode
from quality.auto import Auto, parse_policy

DEFAULT_CONFIG = Path(__file__).with_name("default.toml")


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message lists every wrong field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Paths(_Strict):
    inbox: Path = Path("inbox")
    work: Path = Path("work")
    released: Path = Path("released")
    quarantine: Path = Path("quarantine")
    retrieved: Path = Path("retrieved")
    reports: Path = Path("reports")
    catalog: Path = Path("catalog.sqlite")

    def resolved(self, home: Path) -> "Paths":
        return Paths(**{name: (home / p if not p.is_absolute() else p) for name, p in self})


# A codec mode in a config file is text ("near-lossless:2"); it is parsed here, once, into a codec.modes.Mode that
# the flows pass on as a value, and written back as the same text.
ModeSetting = Annotated[Mode, PlainValidator(Mode.parse), PlainSerializer(str, return_type=str),
                        WithJsonSchema({"type": "string", "examples": ["lossless", "near-lossless:2", "lossy:3"]})]


# The archive policy: a codec mode for every slice, or `auto` (per slice, the cheapest mode that passes its gate).
PolicySetting = Annotated[Mode | Auto, PlainValidator(parse_policy), PlainSerializer(str, return_type=str),
                          WithJsonSchema({"type": "string", "examples": ["lossless", "auto", "near-lossless:2"]})]


class CodecSettings(_Strict):
    mode: PolicySetting = Field(default="auto", validate_default=True)  # within the gates; "lossless" keeps originals
    # The strictest mode a slice failing its gate may be escalated to; a slice still failing there quarantines the
    # study. "lossless" (default) always ends in a passing slice; a site that would rather quarantine than store
    # lossless sets e.g. "near-lossless:4", or the same mode as `mode` for no escalation at all.
    escalate_to: ModeSetting = Field(default="lossless", validate_default=True)


class Gate(_Strict):
    """A modality's thresholds on the metrics of quality.metrics (field `<metric>_min` or `<metric>_max`, per
    Metric.threshold); quality.gates judges a slice against them."""

    psnr_min: float | None = None
    ssim_min: float | None = Field(default=None, ge=-1.0, le=1.0)
    max_error_max: int | None = Field(default=None, ge=0)


class Schedule(_Strict):
    interval_seconds: int = Field(default=300, gt=0)
    cron: str = ""
    settle_seconds: float = Field(default=60, ge=0)
    max_concurrent_studies: int = Field(default=2, ge=1)


class Runner(_Strict):
    kind: Literal["thread", "dask"] = "thread"
    max_workers: int = Field(default=4, ge=1)
    # worker processes that encode, decode and measure for the thread runner's tasks: "auto" = one per core,
    # 0 = in the task threads themselves (a Dask cluster brings its own processes)
    processes: Annotated[int, Field(ge=0)] | Literal["auto"] = "auto"
    dask_address: str = ""

    @model_validator(mode="after")
    def _dask_needs_address(self) -> "Runner":
        if self.kind == "dask" and not self.dask_address:
            raise ValueError("runner.kind = 'dask' needs runner.dask_address (e.g. 'tcp://host:8786')")
        return self


def _ae_title(value: str) -> str:
    if not 1 <= len(value) <= 16 or "\\" in value or not value.strip() or not value.isascii():
        raise ValueError(f"AE title {value!r} must be 1-16 ASCII characters, not all spaces, without backslash")
    return value


class Delivery(_Strict):
    """Where a retrieved study is pushed: nowhere, a DICOM C-STORE SCP, or a DICOMweb STOW-RS endpoint."""

    kind: Literal["none", "cstore", "stowrs"] = "none"
    # how retrieved instances are written (and sent): lossless codings of the stored values; a frame stored lossily
    # keeps its LossyImageCompression labelling, and input kept as received comes back byte for byte
    transfer_syntax: Literal["explicit-le", "jpeg-ls", "jpeg2000", "htj2k"] = "explicit-le"
    host: str = ""  # cstore
    port: int = Field(default=104, ge=1, le=65535)  # cstore
    called_ae: str = "ANY-SCP"  # cstore: the PACS's AE title
    calling_ae: str = "MEDZIP"  # cstore: ours, as registered in the PACS
    url: str = ""  # stowrs: DICOMweb root, e.g. "http://pacs:8042/dicom-web"
    username: str = ""  # stowrs basic auth (optional)
    password_env: str = ""  # stowrs: NAME of the environment variable holding the password, never the password
    retries: int = Field(default=3, ge=0)
    backoff_seconds: float = Field(default=1.0, ge=0)
    timeout_seconds: float = Field(default=30.0, gt=0)

    @field_validator("called_ae", "calling_ae")
    @classmethod
    def _valid_ae(cls, value: str) -> str:
        return _ae_title(value)

    @model_validator(mode="after")
    def _destination_complete(self) -> "Delivery":
        if self.kind == "cstore" and not self.host:
            raise ValueError("delivery.kind = 'cstore' needs delivery.host (and port, called_ae)")
        if self.kind == "stowrs" and not self.url.startswith(("http://", "https://")):
            raise ValueError("delivery.kind = 'stowrs' needs delivery.url, e.g. 'http://pacs:8042/dicom-web'")
        if self.password_env and not self.username:
            raise ValueError("delivery.password_env is set but delivery.username is empty")
        return self


class Config(_Strict):
    home: Path = Path("medzip-data")
    paths: Paths = Paths()
    codec: CodecSettings = CodecSettings()
    gates: dict[str, Gate] = {"default": Gate()}
    schedule: Schedule = Schedule()
    runner: Runner = Runner()
    delivery: Delivery = Delivery()

    def gate_for(self, modality: str) -> Gate:
        return self.gates.get(modality.upper(), self.gates.get("default", Gate()))

    def with_mode(self, mode: Mode | Auto | str) -> "Config":
        return self.model_copy(update={"codec": CodecSettings(mode=mode, escalate_to=self.codec.escalate_to)})


def medzip_home() -> Path:
    return Path(os.environ.get("MEDZIP_HOME") or "medzip-data").absolute()


def _format_errors(source: Path, exc: ValidationError) -> str:
    lines = [f"invalid configuration {source}:"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)


def load_config(path: Path | str | None = None) -> Config:
    """Load a TOML config (the default policy when path is None); paths resolved under $MEDZIP_HOME."""
    source = Path(path) if path is not None else DEFAULT_CONFIG
    try:
        raw = tomllib.loads(source.read_text())
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {source}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid configuration {source}: not valid TOML: {exc}") from None
    gates = raw.get("gates")
    if isinstance(gates, dict):
        raw["gates"] = {str(k).upper() if k != "default" else k: v for k, v in gates.items()}
    try:
        config = Config(**raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(source, exc)) from None
    home = medzip_home()
    return config.model_copy(update={"home": home, "paths": config.paths.resolved(home)})
