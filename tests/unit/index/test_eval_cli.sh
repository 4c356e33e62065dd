#!/usr/bin/env bash
# quire eval retrieval through the binary: SciFact BM25 figures (Anserini's
# published 0.6789 / 0.9253 / 0.9767, ../shared/data/README.md) in --json and
# human output, and the documented exit codes for bad usage and missing data.
set -u
Q=${QUIRE_BIN:?}; S=${QUIRE_SHARED:?}
if [ ! -d "$S/data/scifact" ]; then
  echo "SKIP: $S/data/scifact not found: the evaluation data comes with ../shared (QUIRE_SHARED)"; exit 77
fi
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fails=0; passes=0
ok() { passes=$((passes+1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails+1)); }

if "$Q" eval retrieval --beir "$S/data/scifact" --json > "$T/out.json" 2> "$T/err"; then
  if python3 - "$T/out.json" <<'PY'; then ok; else bad "scifact json: $(cat "$T/out.json")"; fi
import json, sys
j = json.load(open(sys.argv[1]))
m = j["metrics"]
assert abs(m["ndcg@10"] - 0.6789) <= 0.005, m
assert abs(m["recall@100"] - 0.9253) <= 0.005, m
assert abs(m["recall@1000"] - 0.9767) <= 0.005, m
assert 0 < m["mrr@10"] <= 1, m
assert j["docs"] == 5183 and j["terms"] == 838128 and j["queries"] == 300, j
assert j["params"] == {"k1": 0.9, "b": 0.4} and j["hits"] == 1000, j
PY
else
  bad "scifact: quire eval failed: $(cat "$T/err")"
fi

# human output, other parameters: b = 0 and 10 hits change the figures but still run
if "$Q" eval retrieval --beir "$S/data/scifact" --lexical-saturation 1.2 --lexical-length-norm 0 --hits 10 > "$T/out.txt" 2> "$T/err" &&
   grep -q "nDCG@10" "$T/out.txt" && grep -q "k1=1.20 b=0.00" "$T/out.txt"; then ok; else bad "human output: $(cat "$T/out.txt" "$T/err")"; fi

expect_rc() { # expect_rc CODE LABEL -- args
  local want=$1 label=$2; shift 3
  "$Q" "$@" > /dev/null 2> "$T/err"; local rc=$?
  if [ "$rc" = "$want" ]; then ok; else bad "$label: exit $rc, want $want ($(cat "$T/err"))"; fi
}
expect_rc 2 "no subcommand" -- eval
expect_rc 2 "unknown evaluation" -- eval speed
expect_rc 2 "no --beir" -- eval retrieval
expect_rc 2 "bad --lexical-length-norm" -- eval retrieval --beir "$S/data/scifact" --lexical-length-norm 2
expect_rc 2 "bad --hits" -- eval retrieval --beir "$S/data/scifact" --hits 0
expect_rc 2 "unknown option" -- eval retrieval --beir "$S/data/scifact" --frobnicate
expect_rc 4 "missing dataset" -- eval retrieval --beir "$T/nope"
expect_rc 4 "missing split" -- eval retrieval --beir "$S/data/scifact" --split dev
expect_rc 0 "help" -- eval --help

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
