"""Quality: what a decoded slice is worth, decided in one place (docs/design.md, "Definitions").

- `metrics`: the definitions (PSNR, SSIM, max error, ratio, bpp) and the gate metrics by name (`METRICS`: how each
  is computed, its quality-table column dtype, which way passes).
- `gates`: one slice judged against its modality's gate (`evaluate`: decoded vs original; `judge`: recorded figures).
- `escalation`: the ladder a failing slice climbs; `auto`: the first near-lossless k a gate admits and its steering;
  `wavelet_search`: auto's second candidate, the coarsest wavelet rate point a gate admits.
- `records`: the per-slice quality record; `summaries`: worst figures, mean PSNR, per series and per study.
- `images`: the audit's thumbnails and difference image, as arrays.

Knows nothing of Prefect or HDF5; the flows, the archive's quality table, verify, audit and the bench all use it.
"""
