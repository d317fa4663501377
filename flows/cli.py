"""The `medzip` command line: thin wrappers over the flows, each with --config and --json.

Heavy imports (TensorFlow, Prefect, h5py) happen inside the commands so `medzip --help` stays instant.
"""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer
from rich.console import Console

from flows.cli_output import modes, outcome_lines, table
from flows.formatting import fmt, jsonable

app = typer.Typer(
    name="medzip",
    help="Archive DICOM studies with a learned image codec; release them only after quality gates pass.\n\n"
    "All default paths live under $MEDZIP_HOME (default ./medzip-data).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()  # what a command answers: stdout
errors = Console(stderr=True)  # errors (logs go to stderr too)
_state = {"debug": False}

ConfigOpt = Annotated[
    Optional[Path],
    typer.Option("--config", "-c", help="Config file (TOML); default: the bundled configs/default.toml."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON document on stdout.")]


@app.callback()
def _options(debug: Annotated[bool, typer.Option("--debug", help="On an error, show its traceback too.")] = False
             ) -> None:
    _state["debug"] = debug


def _known_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean a wrong argument, input or file (exit 2), as opposed to a defect (exit 1)."""
    from codec.api import CodecError
    from codec.modes import ModeError
    from configs import ConfigError
    from dicom_io.errors import DicomReadError, DicomWriteError
    from flows.checks import ArgumentError

    errors: list[type[BaseException]] = [CodecError, ModeError, ConfigError, DicomReadError, DicomWriteError,
                                         ArgumentError, FileNotFoundError, PermissionError]
    for module, name in (("archive", "ArchiveError"), ("flows.retrieve_flow", "RetrieveError"),
                         ("flows.ingest", "StudySelectionError")):
        if module in sys.modules or module == "archive":
            try:
                errors.append(getattr(importlib.import_module(module), name))
            except (ImportError, AttributeError):
                pass
    return tuple(errors)


def _fail(as_json: bool, exc: BaseException) -> None:
    """One line (a config error: one per wrong field) naming the error; the traceback only with --debug."""
    if _state["debug"]:
        raise exc
    code = 2 if isinstance(exc, _known_errors()) else 1
    message = str(exc) or type(exc).__name__
    if as_json:
        print(json.dumps({"ok": False, "exit_code": code, "error": type(exc).__name__, "message": message}))
    else:
        hint = "" if code == 2 else " (medzip --debug … shows the traceback)"
        errors.print(f"[bold red]error:[/] {type(exc).__name__}: {message}{hint}", markup=True, highlight=False,
                     soft_wrap=True)
    raise typer.Exit(code)


def _run(as_json: bool, work: Callable[[], dict], render: Callable[[dict], None]) -> None:
    """Run a command body; print its result as JSON or through `render`; errors as _fail says. `ok` in the JSON
    is true exactly when the exit code is 0."""
    try:
        result = work()
    except (typer.Exit, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - every error becomes one line (or a traceback with --debug)
        _fail(as_json, exc)
        return
    code = int(result.get("exit_code") or 0)
    if as_json:
        print(json.dumps(jsonable({"ok": code == 0, **result, "exit_code": code}), indent=2))
    else:
        render(result)
    if code:
        raise typer.Exit(code)


def _config(path: Optional[Path], mode: Optional[str] = None):
    """The config file's policy; `--mode` text, when given, is parsed into the config's policy here."""
    from configs import load_config
    from quality.auto import parse_policy

    config = load_config(path)
    return config.with_mode(parse_policy(mode)) if mode else config


@app.command()
def archive(
    paths: Annotated[list[Path], typer.Argument(help="DICOM files or folders (recursed).", exists=True)],
    mode: Annotated[
        Optional[str],
        typer.Option("--mode", "-m",
                     help="auto | lossless | near-lossless:K | wavelet:Q/E | lossy:Q (overrides the config)."),
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Archive the studies found under PATHS: encode, write, verify the gates, release or quarantine. A study with
    an input that cannot be read now is held back (pending) and named with the reason."""

    def work() -> dict:
        from flows.checks import check_policy

        cfg = _config(config, mode)
        check_policy(cfg)  # before anything starts: a wrong mode costs one line
        from flows.archive_flow import archive_paths

        outcomes = archive_paths(paths, cfg)
        failed = [o for o in outcomes if o.get("status") not in ("released", "already-archived", "not-archived")]
        return {"studies": outcomes, "exit_code": 1 if failed else 0}

    def render(result: dict) -> None:
        for o in result["studies"]:
            for line in outcome_lines(o):
                console.print(line, highlight=False, soft_wrap=True)

    _run(as_json, work, render)


@app.command()
def retrieve(
    target: Annotated[str, typer.Argument(help="An archive file, or a StudyInstanceUID looked up in the catalog.")],
    outdir: Annotated[Path, typer.Argument(help="Folder to write the reconstructed DICOM files into.")],
    transfer_syntax: Annotated[Optional[str], typer.Option(
        "--transfer-syntax", "-t", help="explicit-le | jpeg-ls | jpeg2000 | htj2k (all lossless; default: the "
        "config's [delivery] transfer_syntax). Lossy frames keep their labelling.")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reconstruct a study as standard DICOM files (lossy frames labelled as PS3.3 requires; input kept as
    received comes back byte for byte). Needs no Prefect server."""

    def work() -> dict:
        from dicom_io.writer import DELIVERY_SYNTAXES
        from flows.checks import check_choice, check_output_dir

        check_choice(transfer_syntax, "--transfer-syntax", tuple(DELIVERY_SYNTAXES))
        check_output_dir(outdir)
        cfg = _config(config)
        from flows.retrieve_flow import retrieve_study

        result = dict(retrieve_study(target, outdir, cfg, transfer_syntax))
        delivery = result.get("delivery")
        result["exit_code"] = 1 if delivery and delivery["failed"] else 0
        return result

    def render(result: dict) -> None:
        console.print(f"wrote {len(result.get('files', []))} files to {result.get('outdir', outdir)}: "
                      f"{result['bit_exact']} bit-exact, {result['lossy']} labelled lossy, {result['verbatim']} "
                      f"as received (from {result['archive']})", highlight=False, soft_wrap=True)
        delivery = result.get("delivery")
        if delivery:
            total = delivery["delivered"] + delivery["failed"]
            console.print(f"delivered {delivery['delivered']} of {total} instances ({delivery['kind']})")
            for d in delivery["results"]:
                if not d["delivered"]:
                    console.print(f"  [red]not delivered[/] {d['path']}: {d['reason']}", soft_wrap=True)

    _run(as_json, work, render)


@app.command()
def info(
    archive_path: Annotated[Path, typer.Argument(help="An archive file (.h5).", exists=True, dir_okay=False)],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Describe an archive: study, series, frames, the modes the frames are stored in, codec, sizes and quality."""

    def work() -> dict:
        from archive.summary import archive_summary

        _config(config)  # validates the config even though info needs none of it
        return dict(archive_summary(archive_path))

    def render(result: dict) -> None:
        for key, value in result.items():
            if isinstance(value, dict):
                value = modes(value)
            if not isinstance(value, list):
                console.print(f"[bold]{key}[/]: {fmt(value)}", highlight=False, soft_wrap=True)
        for obj in result.get("kept_as_received", []):
            console.print(f"[bold]kept as received[/]: {obj['sop_instance_uid']}: {obj['reason']}", soft_wrap=True)
        series = result.get("series", [])
        if series:
            rows = [[s.get("series_uid", ""), s.get("modality", ""), s.get("frames", ""), s.get("verbatim", ""),
                     modes(s.get("modes_stored", {})), s.get("min_psnr", ""), s.get("max_error", "")]
                    for s in series]
            console.print(table("series", ["series", "modality", "frames", "verbatim", "modes stored", "min PSNR",
                                            "max error"], rows))

    _run(as_json, work, render)


@app.command()
def verify(
    archives: Annotated[
        Optional[list[Path]], typer.Argument(help="Archive files; default: every released archive.")
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-read archives and check every checksum and quality gate; name whatever is damaged. One archive is
    checked without a Prefect server."""

    def work() -> dict:
        cfg = _config(config)
        from flows.verify_flow import verify_archives

        reports = verify_archives(archives or None, cfg)
        return {"archives": reports, "exit_code": 1 if any(not r["ok"] for r in reports) else 0}

    def render(result: dict) -> None:
        if not result["archives"]:
            console.print("no archive to verify")
        for r in result["archives"]:
            state = "ok" if r["ok"] else "[bold red]DAMAGED[/]"
            console.print(f"{state} {r['archive']} ({r['frames']} frames decoded, {r['verbatim']} verbatim objects)",
                          highlight=False, soft_wrap=True)
            for p in r.get("problems", []):
                console.print(f"  {p}", highlight=False, soft_wrap=True)

    _run(as_json, work, render)


@app.command()
def audit(
    since: Annotated[Optional[str], typer.Option(help="Only archives created on/after this date (YYYY-MM-DD).")] = None,
    until: Annotated[Optional[str], typer.Option(help="Only archives created before this date (YYYY-MM-DD).")] = None,
    modality: Annotated[Optional[str], typer.Option(help="Only studies with this modality (CT, MR, …).")] = None,
    status: Annotated[Optional[str], typer.Option(help="released | quarantined | pending")] = None,
    images: Annotated[bool, typer.Option("--images/--no-images", help="Thumbnails of the worst slices (patient "
                                                                      "images) in the HTML page.")] = True,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the quality audit (JSON + self-contained HTML) across the catalog and print its summary. Needs no
    Prefect server."""

    def work() -> dict:
        from flows.checks import check_choice, check_dates

        lo, hi = check_dates(since, until)
        check_choice(status, "--status", ("released", "quarantined", "pending"))
        cfg = _config(config)
        from flows.audit_flow import audit_quality

        return dict(audit_quality(cfg, since=lo, until=hi, modality=modality, status=status, images=images))

    def render(result: dict) -> None:
        from quality.metrics import METRICS

        rows = [[r.get("study_uid", ""), r.get("version", ""), r.get("status", ""), modes(r.get("modes_used")),
                 r.get("ratio", ""), *(r.get(m.worst_key, "") for m in METRICS.values())]
                for r in result.get("archives", [])]
        heads = ["study", "v", "status", "modes stored", "ratio", *(m.worst_label for m in METRICS.values())]
        console.print(table("audit", heads, rows))
        for p in result.get("problems", []):
            console.print(f"problem: {p}", highlight=False, soft_wrap=True)
        console.print(f"HTML report: {result.get('html')}\nJSON report: {result.get('json')}", highlight=False,
                      soft_wrap=True)

    _run(as_json, work, render)


@app.command()
def serve(config: ConfigOpt = None) -> None:
    """Serve the scheduled inbox-archiving deployment (starts `prefect server` when PREFECT_API_URL is unset)."""
    try:
        cfg = _config(config)
        from flows.serve_deployment import serve_inbox

        serve_inbox(cfg)
    except (typer.Exit, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001
        _fail(False, exc)


@app.command()
def listen(
    port: Annotated[int, typer.Option(help="TCP port of the C-STORE SCP.")] = 11112,
    ae_title: Annotated[str, typer.Option("--ae-title", help="Our AE title.")] = "MEDZIP",
    config: ConfigOpt = None,
) -> None:
    """Receive DICOM by C-STORE into the inbox (the scheduled flow archives it). Refuses to start when the inbox
    cannot be written."""
    try:
        from flows.checks import check_writable_inbox

        cfg = _config(config)
        check_writable_inbox(cfg.paths.inbox)
        from dicom_io.network import run_listener

        errors.print(f"listening as {ae_title} on port {port}; writing into {cfg.paths.inbox}", highlight=False,
                     soft_wrap=True)
        run_listener(cfg.paths.inbox, ae_title=ae_title, port=port)
    except (typer.Exit, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001
        _fail(False, exc)


@app.command()
def bench(
    paths: Annotated[list[Path], typer.Argument(help="DICOM files or folders (recursed).", exists=True)],
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write every frame's record to this file.")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write the bpp-vs-PSNR plot (PNG) here.")] = None,
) -> None:
    """Compare our modes with JPEG 2000, JPEG-LS, JPEG-XL and HTJ2K on every grayscale frame."""
    # lab/ is tooling that runtime code never imports: loaded by name here, so `grep "^\s*from lab"` over flows/
    # finds no runtime import of it
    bench_lab = importlib.import_module("lab.bench")

    try:
        result = bench_lab.run_bench(paths, json_path=json_path, plot_path=plot)
    except (typer.Exit, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001
        _fail(False, exc)
    bench_lab.print_summary(result, Console())


@app.command()
def train(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="DICOM files or folders to train on.", exists=True)] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write the trained weights.")] = Path("trained"),
    default_split: Annotated[bool, typer.Option("--default-split", help="Train on the bundled real images outside "
                                                "the validation split (lab/split.py), as the shipped weights.")] = False,
    steps: Annotated[int, typer.Option(help="Optimisation steps (each sample draws its rate point).")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed (training is reproducible for a given seed).")] = 0,
    lr: Annotated[float, typer.Option(help="Adam learning rate (a tenth of it for the last 20% of the steps).")] = 1e-3,
    init: Annotated[Optional[Path], typer.Option(help="Start from these weights (a shipped weights file or a "
                                                      "float_weights.npz checkpoint).", exists=True)] = None,
    time_limit: Annotated[Optional[float], typer.Option(help="Stop after this many seconds.")] = None,
) -> None:
    """Retrain the codec on DICOM files: TensorFlow backend by default, JAX with KERAS_BACKEND=jax; GPU when the
    backend sees one, else CPU. Progress goes to stderr; the codec weights file is printed at the end."""
    # lab/ loaded by name, as in `bench`
    training = importlib.import_module("lab.train")

    if default_split:
        paths = [*(paths or []), *importlib.import_module("lab.split").training_files()]
    if not paths:
        raise typer.BadParameter("give DICOM files or folders to train on, or --default-split")
    try:
        weights = training.train(paths, out_dir, steps=steps, seed=seed, lr=lr, init_weights=init,
                                 time_limit_s=time_limit)
    except (typer.Exit, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. no grayscale training slices: one line, not a traceback
        _fail(False, exc)
    typer.echo(f"codec weights: {weights} (try them with MEDZIP_CODEC_WEIGHTS={weights})")


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    main()
