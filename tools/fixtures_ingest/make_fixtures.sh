#!/bin/sh
# Regenerates the generated ingest fixtures in tests/fixtures/ingest (the
# hand-written ones - guide.md, page.html, records.jsonl, sample.c - are
# committed as they are). Needs cc, cairo (libcairo2-dev) and python3.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out="$here/../../tests/fixtures/ingest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -O1 -o "$tmp/mkpdf" "$here/mkpdf.c" $(pkg-config --cflags --libs cairo)
"$tmp/mkpdf" "$out/three_pages.pdf"
python3 "$here/make_binary_fixtures.py" "$out"
