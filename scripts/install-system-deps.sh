#!/usr/bin/env bash
# Installs the Debian packages Switchboard's tests and `make run` need, when they are missing:
# redis-server (the tests start private Redis servers), chromium (browser tests, driven by
# Playwright at /usr/bin/chromium), PostgreSQL (the multi-process tests start a private cluster)
# nginx (tests/test_nginx_proxy.py runs the shipped deploy/nginx.conf) and, where it is missing,
# systemd for `systemd-analyze verify` of deploy/systemd/ (tests/test_systemd_units.py), and
# an emoji font (chat's reactions and room icons in the docs' screenshots).
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ -x /usr/bin/chromium ] || missing+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
[ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || missing+=(fonts-noto-color-emoji)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "Installing Debian packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" fonts-dejavu-core >/dev/null
