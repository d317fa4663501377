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
DPI = 80  # plots are FIG_WIDTH * DPI = 1040 px wide: they fit a 1400-px screen beside the page margins
FIG_WIDTH = 13.0
THUMB_PX = 160  # worst-slice thumbnails, shown and stored at this width (they are patient images: small, optional)
UID_TAIL = 14  # characters of a UID shown in tables; the full value is in its tooltip
UID_COLUMNS = {"study", "series", "SOP instance", "archive"}


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _img(b64: str, alt: str, width: int | None = None) -> str:
    w = f' width="{width}"' if width else ""
    return f'<img alt="{html.escape(alt)}"{w} src="data:image/png;base64,{b64}">'


def short(value: str, tail: int = UID_TAIL) -> str:
    """A UID or path cut to its last characters (a path to its file name), the full text in a tooltip."""
    text = fmt(value)
    shown = text.rsplit("/", 1)[-1] if "/" in text else text
    if len(shown) > tail + 1:
        shown = "…" + shown[-tail:]
    if shown == text:
        return html.escape(text)
    return f'<span class="uid" title="{html.escape(text, quote=True)}">{html.escape(shown)}</span>'


def _plain_axis(ax, digits: int = 4) -> None:
    """Tick labels as plain numbers (0.9998, never '1e-5+9.998e-1')."""
    from matplotlib.ticker import FormatStrFormatter

    ax.yaxis.set_major_formatter(FormatStrFormatter(f"%.{digits}f"))


def _finite_psnr(v) -> float:
    if v is None or (isinstance(v, float) and math.isinf(v)) or v == "inf":
        return LOSSLESS_PSNR_PLOT
    return min(float(v), LOSSLESS_PSNR_PLOT)





def table(headers: Sequence[str], rows: Sequence[Sequence], cls: str = "") -> str:
    """An HTML table; cells of UID and path columns (UID_COLUMNS) are shortened, the full value in a tooltip."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    uid = [h in UID_COLUMNS for h in headers]
    body = "".join("<tr>" + "".join(f"<td>{short(c) if uid[i] else html.escape(fmt(c))}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def study_chart(archives: list[dict]) -> str:
    """Per-study minimum and mean PSNR, and minimum SSIM; the legend above the bars, never on them."""
    labels = [f"…{a['study_uid'][-10:]} v{a.get('version', 1)}" for a in archives]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(FIG_WIDTH, 3.8))
    x = np.arange(len(archives))
    ax1.bar(x - 0.2, [_finite_psnr(a.get("min_psnr")) for a in archives], 0.4, label="min")
    ax1.bar(x + 0.2, [_finite_psnr(a.get("mean_psnr")) for a in archives], 0.4, label="mean")
    ax1.set_ylabel(f"PSNR dB (exact drawn at {LOSSLESS_PSNR_PLOT:g})")
    ax1.set_title("PSNR per study", pad=24)
    ax1.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=8, frameon=False)
    ssim = [a.get("min_ssim") if a.get("min_ssim") is not None else 0 for a in archives]
    ax2.bar(x, ssim, 0.5, color="tab:green")
    low = min([0.9] + [v for v in ssim if v])
    ax2.set_ylim(low - (1.0 - low) * 0.05, 1.0 + (1.0 - low) * 0.05)
    _plain_axis(ax2)
    ax2.set_title("minimum SSIM per study", pad=24)
    for ax in (ax1, ax2):
        ax.set_xticks(x, labels, fontsize=7, rotation=20 if len(archives) > 6 else 0, ha="right" if len(archives) > 6
                      else "center")
    fig.tight_layout()
    return _png(fig)


def slice_chart(frames: list[dict]) -> str:
    """PSNR and SSIM of every slice, in archive order, one colour per study (legend beside the plots)."""
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(FIG_WIDTH, 5.2), sharex=True)
    studies = list(dict.fromkeys(f["study_uid"] for f in frames))
    offset = 0
    for uid in studies:
        mine = [f for f in frames if f["study_uid"] == uid]
        x = np.arange(offset, offset + len(mine))
        ax1.plot(x, [_finite_psnr(f.get("psnr")) for f in mine], ".", markersize=3, label=f"…{uid[-10:]}")
        ax2.plot(x, [f.get("ssim", 0) for f in mine], ".", markersize=3)
        offset += len(mine)
    ax1.set_ylabel("PSNR dB")
    ax1.set_title("every slice (exact slices at the top line)")
    ax2.set_ylabel("SSIM")
    _plain_axis(ax2)
    ax2.set_xlabel("slice (in archive order)")
    if len(studies) <= 12:
        ax1.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, title="study", title_fontsize=7)
    fig.tight_layout()
    return _png(fig)


def ratio_chart(frames: list[dict]) -> str:
    ratios = [f["ratio"] for f in frames if f.get("ratio") and math.isfinite(f["ratio"])]
    fig, ax = plt.subplots(figsize=(FIG_WIDTH * 0.6, 3.0))
    ax.hist(ratios or [0], bins=min(30, max(5, len(ratios) // 3)), color="tab:purple")
    ax.set_xlabel("compression ratio per slice (uncompressed / payload)")
    ax.set_ylabel("slices")
    ax.set_title("ratio distribution")
    fig.tight_layout()
    return _png(fig)


def _thumb(values: np.ndarray, vmin: float | None = None, vmax: float | None = None, cmap: str = "gray") -> str:
    buf = io.BytesIO()
    plt.imsave(buf, images.thumbnail(values, THUMB_PX), cmap=cmap, vmin=vmin, vmax=vmax, format="png")
    return base64.b64encode(buf.getvalue()).decode()


def worst_slice_row(info: dict, original: np.ndarray | None, decoded: np.ndarray) -> str:
    """Original, decoded and amplified |difference| thumbnails of one slice (original may be unavailable)."""
    cells = []
    if original is not None:
        lo, hi = images.display_range(original)
        diff, (dlo, dhi) = images.difference(original, decoded)
        cells.append(_img(_thumb(original, lo, hi), "original", THUMB_PX))
        cells.append(_img(_thumb(decoded, lo, hi), "decoded", THUMB_PX))
        cells.append(_img(_thumb(diff, dlo, dhi, cmap="inferno"), "amplified difference", THUMB_PX))
    else:
        lo, hi = images.display_range(decoded)
        cells.append("<em>original no longer at its source path</em>")
        cells.append(_img(_thumb(decoded, lo, hi), "decoded", THUMB_PX))
        cells.append("")
    caption = (f"study {short(info['study_uid'])} · series {short(info['series_uid'])} · instance "
               f"{short(info['sop_uid'])} frame {info['frame']} · mode {html.escape(str(info['mode']))} · PSNR "
               f"{html.escape(fmt(info.get('psnr')))} dB · SSIM {html.escape(fmt(info.get('ssim')))} · max error "
               f"{html.escape(fmt(info.get('max_error')))}")
    return ('<div class="worst"><p>' + caption + "</p><table class=\"thumbs\"><tr><th>original</th>"
            "<th>decoded</th><th>|difference|, stretched (white = max error)</th></tr><tr>"
            + "".join(f"<td>{c}</td>" for c in cells) + "</tr></table></div>")


STYLE = """
body{font-family:sans-serif;margin:1.5em;color:#222;max-width:1360px} table{border-collapse:collapse;margin:.5em 0 1.5em;
max-width:100%} td,th{border:1px solid #bbb;padding:2px 6px;font-size:12px;text-align:left;overflow-wrap:anywhere}
th{background:#eee} h2{border-bottom:1px solid #ccc;margin-top:1.5em} .thumbs td{border:none}
.worst p{font-size:12px;margin:.2em 0} .uid{border-bottom:1px dotted #888;cursor:help;white-space:nowrap}
figure{margin:0} figure img{max-width:100%;height:auto}
"""


def render_html(title: str, sections: list[tuple[str, str]]) -> str:
    """One self-contained page: every image is a data: URI, no external asset."""
    body = "".join(f'<section><h2>{html.escape(h)}</h2>{content}</section>' for h, content in sections)
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")


def plot_section(b64: str, alt: str) -> str:
    return f'<figure>{_img(b64, alt)}<figcaption>{html.escape(alt)}</figcaption></figure>'
