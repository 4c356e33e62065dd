#!/usr/bin/env bash
# Downloads (does not install) the .deb files of quire's build dependencies
# into bench/gpu/debs/, for a GPU machine that has CUDA but not these -dev
# packages and cannot reach a registry: carry bench/gpu/debs with the device
# call and bench/gpu/run.sh unpacks them under /tmp/quire-deps. Run on a
# machine of the same distribution as the GPU machine (glibc must match);
# bench/gpu/debs is ignored by git (add it to .git/info/exclude).
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p debs
cd debs
pk="libjansson-dev libjansson4 libpcre2-dev libpcre2-8-0 libutf8proc-dev libutf8proc2 libopenblas-dev
    libopenblas0-pthread libopenblas0 liblmdb-dev liblmdb0 libfaiss-dev libxml2-dev libxml2 libpoppler-glib-dev
    libpoppler-glib8 libpoppler-dev libmicrohttpd-dev libmicrohttpd12 libgomp1 liblapack-dev libblas-dev
    libzip-dev libzip4"
apt-get download $pk
ls -la
