"""Rendering of the quality audit: matplotlib (Agg) charts and thumbnails as base64 PNG, in one HTML file.

Input is the audit's plain data (see flows.audit_flow); nothing here reads archives, computes metrics or does
pixel math (quality.images does).
"""
from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from flows.formatting import fmt  # noqa: E402
from quality import images  # noqa: E402

LOSSLESS_PSNR_PLOT = 100.0  # where exact (infinite PSNR) slices are drawn on PSNR axes


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _img(b64: str, alt: str, width: int | None = None) -> str:
    w = f' width="{width}"' if width else ""
    return f'<img alt="{html.escape(alt)}"{w} src="data:image/png;base64,{b64}">'


def _finite_psnr(v) -> float:
    if v is None or (isinstance(v, float) and math.isinf(v)) or v == "inf":
        return LOSSLESS_PSNR_PLOT
    return min(float(v), LOSSLESS_PSNR_PLOT)


def table(headers: Sequence[str], rows: Sequence[Sequence], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def study_chart(archives: list[dict]) -> str:
    """Per-study minimum and mean PSNR, and minimum SSIM."""
    labels = [f"{a['study_uid'][-12:]}\nv{a.get('version', 1)}" for a in archives]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(max(6, 1.2 * len(archives) + 4), 3.6))
    x = np.arange(len(archives))
    ax1.bar(x - 0.2, [_finite_psnr(a.get("min_psnr")) for a in archives], 0.4, label="min")
    ax1.bar(x + 0.2, [_finite_psnr(a.get("mean_psnr")) for a in archives], 0.4, label="mean")
    ax1.set_ylabel(f"PSNR dB (exact drawn at {LOSSLESS_PSNR_PLOT:g})")
    ax1.set_title("PSNR per study")
    ax1.legend(fontsize=7)
    ax2.bar(x, [a.get("min_ssim") if a.get("min_ssim") is not None else 0 for a in archives], 0.5, color="tab:green")
    ax2.set_ylim(min([0.9] + [a["min_ssim"] for a in archives if a.get("min_ssim") is not None]), 1.0005)
    ax2.set_title("minimum SSIM per study")
    for ax in (ax1, ax2):
        ax.set_xticks(x, labels, fontsize=6)
    return _png(fig)


def slice_chart(frames: list[dict]) -> str:
    """PSNR and SSIM of every slice, in archive order, one colour per study."""
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    studies = list(dict.fromkeys(f["study_uid"] for f in frames))
    offset = 0
    for uid in studies:
        mine = [f for f in frames if f["study_uid"] == uid]
        x = np.arange(offset, offset + len(mine))
        ax1.plot(x, [_finite_psnr(f.get("psnr")) for f in mine], ".", markersize=3, label=uid[-12:])
        ax2.plot(x, [f.get("ssim", 0) for f in mine], ".", markersize=3)
        offset += len(mine)
    ax1.set_ylabel("PSNR dB")
    ax1.set_title("every slice (exact slices at the top line)")
    ax2.set_ylabel("SSIM")
    ax2.set_xlabel("slice (in archive order)")
    if len(studies) <= 12:
        ax1.legend(fontsize=6, ncol=3)
    return _png(fig)


def ratio_chart(frames: list[dict]) -> str:
    ratios = [f["ratio"] for f in frames if f.get("ratio") and math.isfinite(f["ratio"])]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(ratios or [0], bins=min(30, max(5, len(ratios) // 3)), color="tab:purple")
    ax.set_xlabel("compression ratio per slice (uncompressed / payload)")
    ax.set_ylabel("slices")
    ax.set_title("ratio distribution")
    return _png(fig)


def _thumb(values: np.ndarray, vmin: float | None = None, vmax: float | None = None, cmap: str = "gray") -> str:
    buf = io.BytesIO()
    plt.imsave(buf, images.thumbnail(values), cmap=cmap, vmin=vmin, vmax=vmax, format="png")
    return base64.b64encode(buf.getvalue()).decode()


def worst_slice_row(info: dict, original: np.ndarray | None, decoded: np.ndarray) -> str:
    """Original, decoded and amplified |difference| thumbnails of one slice (original may be unavailable)."""
    cells = []
    if original is not None:
        lo, hi = images.display_range(original)
        diff, (dlo, dhi) = images.difference(original, decoded)
        cells.append(_img(_thumb(original, lo, hi), "original", 200))
        cells.append(_img(_thumb(decoded, lo, hi), "decoded", 200))
        cells.append(_img(_thumb(diff, dlo, dhi, cmap="inferno"), "amplified difference", 200))
    else:
        lo, hi = images.display_range(decoded)
        cells.append("<em>original no longer at its source path</em>")
        cells.append(_img(_thumb(decoded, lo, hi), "decoded", 200))
        cells.append("")
    caption = (f"study {info['study_uid']} · series {info['series_uid']} · instance {info['sop_uid']} "
               f"frame {info['frame']} · mode {info['mode']} · PSNR {fmt(info.get('psnr'))} dB · "
               f"SSIM {fmt(info.get('ssim'))} · max error {info.get('max_error')}")
    return ('<div class="worst"><p>' + html.escape(caption) + "</p><table class=\"thumbs\"><tr><th>original</th>"
            "<th>decoded</th><th>|difference|, stretched (white = max error)</th></tr><tr>"
            + "".join(f"<td>{c}</td>" for c in cells) + "</tr></table></div>")


STYLE = """
body{font-family:sans-serif;margin:1.5em;color:#222} table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #bbb;padding:2px 6px;font-size:12px;text-align:left} th{background:#eee}
h2{border-bottom:1px solid #ccc;margin-top:1.5em} .thumbs td{border:none} .worst p{font-size:12px;margin:.2em 0}
"""


def render_html(title: str, sections: list[tuple[str, str]]) -> str:
    """One self-contained page: every image is a data: URI, no external asset."""
    body = "".join(f'<section><h2>{html.escape(h)}</h2>{content}</section>' for h, content in sections)
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")


def plot_section(b64: str, alt: str) -> str:
    return f'<figure>{_img(b64, alt)}<figcaption>{html.escape(alt)}</figcaption></figure>'
