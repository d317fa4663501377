#!/usr/bin/env bash
# Installs the Debian tools the DICOM-peer tests use, skipping what is already there:
#   dicom3tools (dciodvfy)  dcmtk (dcmdump, dcmj2pnm)  orthanc + orthanc-dicomweb + orthanc-gdcm (a real PACS
#   with DICOMweb that also decodes JPEG 2000)  chromium (the audit page looked at in a real headless browser).
# Idempotent and quiet; runs `apt-get update` only when a package cannot be found or installed from the
# current lists. Needs root (or sudo). Without either it says so and exits 0: the tests that need the tools
# then skip with a reason instead of failing the run.
set -euo pipefail

PACKAGES=(dicom3tools dcmtk orthanc orthanc-dicomweb orthanc-gdcm chromium)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_test_tools: no apt-get here; install ${missing[*]} by hand (peer tests will skip)" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "install_test_tools: not root and no sudo; install ${missing[*]} by hand (peer tests will skip)" >&2
        exit 0
    fi
fi

export DEBIAN_FRONTEND=noninteractive
install() {
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/medzip-apt-install.log 2>&1
}
echo "install_test_tools: installing ${missing[*]}" >&2
if ! install; then
    # Lists missing or stale (fresh container, moved mirror): refresh once and try again.
    $SUDO apt-get update -qq >/tmp/medzip-apt-update.log 2>&1 || { cat /tmp/medzip-apt-update.log >&2; exit 1; }
    install || { tail -n 30 /tmp/medzip-apt-install.log >&2; exit 1; }
fi
