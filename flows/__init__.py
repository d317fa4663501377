"""Prefect flows and the `medzip` CLI: thin orchestration over dicom_io, codec and archive.

Importing this package sets Prefect defaults (unless the environment already sets them): Prefect's own state
lives under $MEDZIP_HOME like everything else medzip writes; the temporary local server gets time to start on a
loaded machine (Prefect's default of 20 s is too short for a busy 2-core host); and it sends no telemetry (hospital
hosts are often offline, and its failed attempts flood the log). And Prefect's temporary server dies with the
process that started it, however that process ends (flows/prefect_server.py).
"""
import os

from configs.schema import medzip_home

if "PREFECT_HOME" not in os.environ:
    os.environ["PREFECT_HOME"] = str(medzip_home() / "prefect")
    os.makedirs(os.environ["PREFECT_HOME"], mode=0o700, exist_ok=True)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

from flows.prefect_server import temporary_server_dies_with_parent  # noqa: E402

temporary_server_dies_with_parent()  # no crash of medzip leaves Prefect's temporary server running
