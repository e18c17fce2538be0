#!/usr/bin/env bash
# Make sure the Debian packages the project needs are present: python3-venv and the
# Mosquitto broker (tests and the demo start their own broker on a free port; the
# system service is not used), poppler-utils (pdftoppm / pdftotext, for the label test) and
# the fonts embedded in return labels (DejaVu Sans: Latin, Greek, Cyrillic, Arabic; GNU
# FreeFont: Indic scripts, Thai, Ethiopic; WenQuanYi Zen Hei: Chinese, Japanese, Korean). Installs them with apt-get when running as root;
# otherwise prints the exact command to run and fails.
set -euo pipefail

need=()
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  need+=(mosquitto)
fi
# pdftoppm renders return labels in the gateway's label test
command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)
# fonts embedded in return labels (gateway/services/labels.py; each licence allows embedding:
# Bitstream Vera, GPL-3 and GPL-2 with their font embedding exceptions)
fonts=/usr/share/fonts/truetype
[ -f $fonts/dejavu/DejaVuSans.ttf ] && [ -f $fonts/dejavu/DejaVuSans-Bold.ttf ] \
  || need+=(fonts-dejavu-core)
[ -f $fonts/freefont/FreeSans.ttf ] && [ -f $fonts/freefont/FreeSansBold.ttf ] \
  && [ -f $fonts/freefont/FreeSerif.ttf ] || need+=(fonts-freefont-ttf)
[ -f $fonts/wqy/wqy-zenhei.ttc ] || need+=(fonts-wqy-zenhei)
# promtool (Debian package prometheus; its service is never started here) checks the
# Prometheus exposition of gateway and station
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# headless Chromium drives the browser tests (pytest -m browser) through pip's playwright
[ -x /usr/bin/chromium ] || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  echo "ensure-system-deps: installing ${need[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  # wait for another apt-get (a parallel set-up) instead of failing on the dpkg lock
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}"
  # The Debian package enables a system broker on 1883; we never rely on it.
else
  echo "ensure-system-deps: missing ${need[*]}. Run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
