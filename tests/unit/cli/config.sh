#!/usr/bin/env bash
# quire config: precedence flag > env > file > default as seen from the
# binary, error messages and exit codes, and configs/quire.conf ($1) equal to
# what the table renders (quire config --dump-default).
set -u
Q=${QUIRE_BIN:?}
CONF=${1:?path to configs/quire.conf}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fails=0; passes=0
ok() { passes=$((passes+1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails+1)); }
# expect CODE "needle" -- command...
expect() {
  local code=$1 needle=$2; shift 3
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ "$rc" != "$code" ]; then bad "$* -> exit $rc, want $code: $out"; return; fi
  if [ -n "$needle" ] && ! grep -qF -- "$needle" <<<"$out"; then bad "$* -> missing '$needle' in: $out"; return; fi
  ok
}
unset QUIRE_CONFIG QUIRE_CTX QUIRE_TEMPERATURE QUIRE_SEED QUIRE_DTYPE

# table rendering == the committed file
if diff -u "$CONF" <("$Q" config --dump-default) >"$T/diff"; then ok; else bad "configs/quire.conf differs from quire config --dump-default:"; cat "$T/diff" >&2; fi

printf 'ctx = 111\ntemperature = 0.5\nseed = 3\n' > "$T/a.conf"
line() { grep -E "^$1 =" <<<"$2"; }
out=$(QUIRE_CONFIG="$T/a.conf" QUIRE_CTX=222 QUIRE_TEMPERATURE=0.25 "$Q" config --ctx 333)
[ "$(line ctx "$out")" = "ctx = 333  # flag --ctx" ] && ok || bad "flag wins: $(line ctx "$out")"
[ "$(line temperature "$out")" = "temperature = 0.25  # environment QUIRE_TEMPERATURE" ] && ok || bad "env wins over file: $(line temperature "$out")"
[ "$(line seed "$out")" = "seed = 3  # $T/a.conf:3" ] && ok || bad "file wins over default: $(line seed "$out")"
[ "$(line top-k "$out")" = "top-k = 40  # default" ] && ok || bad "default: $(line top-k "$out")"
# --config beats QUIRE_CONFIG
printf 'seed = 9\n' > "$T/b.conf"
out=$(QUIRE_CONFIG="$T/a.conf" "$Q" config --config "$T/b.conf")
[ "$(line seed "$out")" = "seed = 9  # $T/b.conf:1" ] && ok || bad "--config over QUIRE_CONFIG: $(line seed "$out")"

expect 4 "$T/nope.conf (named by --config) does not exist" -- "$Q" config --config "$T/nope.conf"
# a missing explicitly named file is "not found" (4) from QUIRE_CONFIG too
expect 4 "QUIRE_CONFIG" -- env QUIRE_CONFIG="$T/nope.conf" "$Q" config
printf 'seed = 1\nmax-tokens = 70000\n' > "$T/c.conf"
expect 2 "$T/c.conf:2: max-tokens: 70000 is above the maximum 65536" -- "$Q" config --config "$T/c.conf"
printf 'temprature = 1\n' > "$T/d.conf"
expect 2 'did you mean "temperature"' -- "$Q" config --config "$T/d.conf"
expect 2 "environment QUIRE_DTYPE: dtype: \"fp4\" is not one of f32|bf16|f16|int8" -- env QUIRE_DTYPE=fp4 "$Q" config
expect 2 "flag --top-p: top-p: 2 is above the maximum 1" -- "$Q" config --top-p 2
expect 2 "did you mean --max-tokens" -- "$Q" config --max-token 5
expect 2 "device" -- "$Q" config --device tpu
expect 0 "did you mean QUIRE_TEMPERATURE" -- env QUIRE_TEMPERATUR=1 "$Q" config
expect 0 "usage: quire config" -- "$Q" config --help
expect 2 "unknown command" -- "$Q" frobnicate
expect 0 "quire 0" -- "$Q" version
# --json: the version meson.build declares (independent of the binary's own text)
ver=$(sed -n "s/^  version : '\\(.*\\)',/\\1/p" "$(dirname "$CONF")/../meson.build")
expect 0 "{\"name\":\"quire\",\"version\":\"$ver\"}" -- "$Q" version --json
expect 2 "unknown option" -- "$Q" version --frob

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
