#!/usr/bin/env bash
# Debian packages the tests use, installed when missing (needs root; otherwise says what to install):
#   libopenal-data  OpenAL Soft's default HRTF set (.mhr, derived from MIT KEMAR) for binaural soundscapes
#   chromium        headless browser for the studio tests (driven by Playwright with executable_path)
set -euo pipefail
PKGS=(libopenal-data chromium)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "note: install these Debian packages for the full test suite: ${missing[*]}" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
