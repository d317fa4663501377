"""The `medzip` command line: thin wrappers over the flows, each with --config and --json.

Heavy imports (TensorFlow, Prefect, h5py) happen inside the commands so `medzip --help` stays instant.
"""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer
from rich.console import Console
from rich.table import Table

from flows.formatting import jsonable

app = typer.Typer(
    name="medzip",
    help="Archive DICOM studies with a learned image codec; release them only after quality gates pass.\n\n"
    "All default paths live under $MEDZIP_HOME (default ./medzip-data).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)

ConfigOpt = Annotated[
    Optional[Path],
    typer.Option("--config", "-c", help="Config file (TOML); default: the bundled configs/default.toml."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON document on stdout.")]


def _known_errors() -> tuple[type[BaseException], ...]:
    from codec.api import CodecError
    from codec.modes import ModeError
    from configs import ConfigError
    from dicom_io.errors import DicomReadError

    errors: list[type[BaseException]] = [CodecError, ModeError, ConfigError, DicomReadError, FileNotFoundError]
    try:
        from archive import ArchiveError

        errors.append(ArchiveError)
    except ImportError:
        pass
    return tuple(errors)


def _run(as_json: bool, work: Callable[[], dict], render: Callable[[dict], None], flows: bool = True) -> None:
    """Run a command body; print its result as JSON or through `render`; turn known errors into exit 2."""
    if flows:  # a crash of this process must not leave Prefect's temporary server running
        from flows.prefect_server import temporary_server_dies_with_parent

        temporary_server_dies_with_parent()
    try:
        result = work()
    except _known_errors() as exc:
        if as_json:
            print(json.dumps({"ok": False, "error": type(exc).__name__, "message": str(exc)}))
        else:
            console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps(jsonable({"ok": True, **result}), indent=2))
    else:
        render(result)
    if result.get("exit_code"):
        raise typer.Exit(int(result["exit_code"]))


def _config(path: Optional[Path], mode: Optional[str] = None):
    """The config file's policy; `--mode` text, when given, is parsed into the config's policy here."""
    from configs import load_config
    from quality.auto import parse_policy

    config = load_config(path)
    return config.with_mode(parse_policy(mode)) if mode else config


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row])
    return table


@app.command()
def archive(
    paths: Annotated[list[Path], typer.Argument(help="DICOM files or folders (recursed).", exists=True)],
    mode: Annotated[
        Optional[str],
        typer.Option("--mode", "-m", help="auto | lossless | near-lossless:K | lossy:Q (overrides the config)."),
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Archive the studies found under PATHS: encode, write, verify the gates, release or quarantine."""

    def work() -> dict:
        from flows.archive_flow import archive_paths

        outcomes = archive_paths(paths, _config(config, mode))
        failed = [o for o in outcomes if o.get("status") not in ("released", "already-archived")]
        return {"studies": outcomes, "exit_code": 1 if failed else 0}

    def render(result: dict) -> None:
        rows = [
            [o.get("study_uid", "?"), o.get("status"), o.get("frames", ""), o.get("ratio", ""),
             o.get("min_psnr", ""), o.get("archive", "")]
            for o in result["studies"]
        ]
        console.print(_table("archived studies", ["study", "status", "frames", "ratio", "min PSNR", "archive"], rows))

    _run(as_json, work, render)


@app.command()
def retrieve(
    target: Annotated[str, typer.Argument(help="An archive file, or a StudyInstanceUID looked up in the catalog.")],
    outdir: Annotated[Path, typer.Argument(help="Folder to write the reconstructed DICOM files into.")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reconstruct a study as standard DICOM files (lossy frames labelled as PS3.3 requires)."""

    def work() -> dict:
        from flows.retrieve_flow import retrieve_study

        return dict(retrieve_study(target, outdir, _config(config)))

    def render(result: dict) -> None:
        console.print(f"wrote {len(result.get('files', []))} files to {result.get('outdir', outdir)}")
        delivery = result.get("delivery")
        if delivery:
            total = delivery["delivered"] + delivery["failed"]
            console.print(f"delivered {delivery['delivered']} of {total} instances ({delivery['kind']})")
            for d in delivery["results"]:
                if not d["delivered"]:
                    console.print(f"  [red]not delivered[/] {d['path']}: {d['reason']}")

    _run(as_json, work, render)


@app.command()
def info(
    archive_path: Annotated[Path, typer.Argument(help="An archive file (.h5).", exists=True, dir_okay=False)],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Describe an archive: study, series, frames, codec, sizes and quality."""

    def work() -> dict:
        from archive.summary import archive_summary

        _config(config)  # validates the config even though info needs none of it
        return dict(archive_summary(archive_path))

    def render(result: dict) -> None:
        for key, value in result.items():
            if not isinstance(value, (list, dict)):
                console.print(f"[bold]{key}[/]: {value}")
        series = result.get("series", [])
        if series:
            rows = [[s.get("series_uid", ""), s.get("modality", ""), s.get("frames", ""), s.get("min_psnr", "")]
                    for s in series]
            console.print(_table("series", ["series", "modality", "frames", "min PSNR"], rows))

    _run(as_json, work, render, flows=False)


@app.command()
def verify(
    archives: Annotated[
        Optional[list[Path]], typer.Argument(help="Archive files; default: every released archive.")
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-read archives and check every checksum and quality gate; name whatever is damaged."""

    def work() -> dict:
        from flows.verify_flow import verify_archives

        reports = verify_archives(archives or None, _config(config))
        return {"archives": reports, "exit_code": 1 if any(not r["ok"] for r in reports) else 0}

    def render(result: dict) -> None:
        rows = [[r["archive"], "ok" if r["ok"] else "DAMAGED", "; ".join(r.get("problems", []))]
                for r in result["archives"]]
        console.print(_table("verification", ["archive", "result", "problems"], rows))

    _run(as_json, work, render)


@app.command()
def audit(
    since: Annotated[Optional[str], typer.Option(help="Only archives created on/after this date (YYYY-MM-DD).")] = None,
    until: Annotated[Optional[str], typer.Option(help="Only archives created before this date (YYYY-MM-DD).")] = None,
    modality: Annotated[Optional[str], typer.Option(help="Only studies with this modality (CT, MR, …).")] = None,
    status: Annotated[Optional[str], typer.Option(help="released | quarantined | pending")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the quality audit (JSON + self-contained HTML) across the catalog and print its summary."""

    def work() -> dict:
        from flows.audit_flow import audit_quality

        return dict(audit_quality(_config(config), since=since, until=until, modality=modality, status=status))

    def render(result: dict) -> None:
        from quality.metrics import METRICS

        rows = [[r.get("study_uid", ""), r.get("status", ""), r.get("mode", ""), r.get("ratio", ""),
                 *(r.get(m.worst_key, "") for m in METRICS.values())]
                for r in result.get("archives", [])]
        heads = ["study", "status", "mode", "ratio", *(m.worst_label for m in METRICS.values())]
        console.print(_table("audit", heads, rows))
        console.print(f"HTML report: {result.get('html')}\nJSON report: {result.get('json')}")

    _run(as_json, work, render)


@app.command()
def serve(config: ConfigOpt = None) -> None:
    """Serve the scheduled inbox-archiving deployment (starts `prefect server` when PREFECT_API_URL is unset)."""
    from flows.serve_deployment import serve_inbox

    serve_inbox(_config(config))


@app.command()
def listen(
    port: Annotated[int, typer.Option(help="TCP port of the C-STORE SCP.")] = 11112,
    ae_title: Annotated[str, typer.Option("--ae-title", help="Our AE title.")] = "MEDZIP",
    config: ConfigOpt = None,
) -> None:
    """Receive DICOM by C-STORE into the inbox (the scheduled flow archives it)."""
    from dicom_io.network import run_listener

    cfg = _config(config)
    console.print(f"listening as {ae_title} on port {port}; writing into {cfg.paths.inbox}")
    run_listener(cfg.paths.inbox, ae_title=ae_title, port=port)


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

    result = bench_lab.run_bench(paths, json_path=json_path, plot_path=plot)
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
    weights = training.train(paths, out_dir, steps=steps, seed=seed, lr=lr, init_weights=init, time_limit_s=time_limit)
    typer.echo(f"codec weights: {weights} (try them with MEDZIP_CODEC_WEIGHTS={weights})")


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    main()
