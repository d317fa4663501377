"""The audit page looked at in a real headless Chromium (Debian's `chromium`, scripts/install_test_tools.sh): it
renders, fits a 1400-px screen, logs no console error; UIDs are shortened with the full value in a tooltip, SSIM axes
are plain numbers, thumbnails are optional and the page stays small."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from configs import Gate
from flows import audit_report as R
from tests.helpers.flows import _find, codec_has, make_config, write_study

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium(tmp_path: Path, page: Path, *extra: str) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("chromium is not installed (scripts/install_test_tools.sh)")
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"  # a fresh profile each time
    return subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                           "--window-size=1400,2000", *extra, page.as_uri()], capture_output=True, text=True,
                          timeout=180)


def console_errors(run: subprocess.CompletedProcess) -> list[str]:
    return [line for line in run.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]


@pytest.fixture(scope="module")
def report(tmp_path_factory, prefect_server):
    if not codec_has("lossy:0"):
        pytest.skip("the installed codec has no lossy mode: no worst slices to show")
    from flows.archive_flow import archive_paths
    from flows.audit_flow import audit_quality

    root = tmp_path_factory.mktemp("audit")
    config = make_config(root / "home", mode="lossy:0", gates={"default": Gate(psnr_min=45.0, max_error_max=2)})
    ct = sorted(p for p in _find("17106").parent.iterdir() if p.is_file())
    write_study(root / "a", "1.2.826.0.1.3680043.8.498.65001", [_find("CT_small.dcm"), *ct])
    write_study(root / "b", "1.2.826.0.1.3680043.8.498.65002", [_find("MR_small.dcm"), _find("JPGExtended.dcm")])
    for folder in ("a", "b"):
        (outcome,) = archive_paths([root / folder], config)
        assert outcome["status"] == "released", outcome
    return {"with": Path(audit_quality(config)["html"]), "without": Path(audit_quality(config, images=False)["html"])}


def test_the_page_renders_in_chromium_without_console_errors(report, tmp_path):
    from PIL import Image

    shot = tmp_path / "page.png"
    run = chromium(tmp_path, report["with"], f"--screenshot={shot}", "--hide-scrollbars")
    assert shot.is_file(), run.stderr[-2000:]
    assert console_errors(run) == []
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert image.shape[1] == 1400
    assert (image < 250).any(axis=2).mean() > 0.05, "the screenshot is (nearly) blank"
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 64, "plots and thumbnails, not flat text only"
    # the detector above does see a console error when there is one
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><html><body><script>console.error('medzip-probe')</script></body></html>")
    assert any("medzip-probe" in line for line in console_errors(chromium(tmp_path, broken, "--dump-dom")))


def test_the_page_fits_a_1400_px_screen(report, tmp_path):
    measured = tmp_path / "measured.html"
    measured.write_text(report["with"].read_text().replace(
        "</body>", "<script>document.body.setAttribute('data-width', document.documentElement.scrollWidth)"
                   "</script></body>"))
    dom = chromium(tmp_path, measured, "--dump-dom").stdout
    width = int(re.search(r'data-width="(\d+)"', dom).group(1))
    assert width <= 1400, f"the page is {width} px wide"


def test_uids_are_shortened_with_the_full_value_in_a_tooltip(report):
    page = report["with"].read_text()
    full = "1.2.826.0.1.3680043.8.498.65001"
    assert f'title="{full}"' in page and f">…{full[-R.UID_TAIL:]}<" in page
    assert f"<td>{full}</td>" not in page


def test_thumbnails_are_optional_and_the_page_small(report):
    with_images, without = report["with"].read_text(), report["without"].read_text()
    assert 'alt="original"' in with_images and 'alt="original"' not in without
    assert "Thumbnails left out (--no-images)" in without
    assert len(without) < 150_000 and len(with_images) < 400_000, (len(without), len(with_images))


def test_ssim_axes_are_plain_numbers():
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0.99981, 0.99989])
    R._plain_axis(ax)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert ax.yaxis.get_offset_text().get_text() == "" and all(re.fullmatch(r"0\.\d{4}", t) for t in labels if t)
    plt.close(fig)


def test_escalations_carry_their_reasons_in_the_page(report):
    import html as html_lib

    page = html_lib.unescape(report["with"].read_text())
    failures = page.split("Gate failures and escalations", 1)[1].split("</table>", 1)[0]
    assert re.search(r"lossy:0: PSNR \d+\.\d\d dB < 45\.0; max error \d+ > 2", failures), failures[:2000]
    assert "near-lossless:2" in failures
