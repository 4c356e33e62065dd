#!/usr/bin/env bash
# Installs the Debian packages quire builds and tests with (idempotent; needs root or sudo).
set -euo pipefail
pkgs=(build-essential meson ninja-build pkg-config libjansson-dev libpcre2-dev libopenblas-dev libutf8proc-dev
      liblmdb-dev libfaiss-dev libxml2-dev libzip-dev libpoppler-glib-dev libmicrohttpd-dev slurm-wlm-doc
      prometheus nodejs
      slurmctld slurmd slurm-client munge curl
      python3 python3-venv python3-pip unzip)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
