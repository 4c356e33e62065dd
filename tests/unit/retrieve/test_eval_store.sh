#!/usr/bin/env bash
# quire eval retrieval through a store (ingest + quire search's retriever) on the hand-made
# tests/fixtures/beir_tiny dataset, whose expected metrics are derived by hand in its README.md
# (independent of quire's output): the BM25 reference path, a BM25-only store given with --store
# (and reused: nothing re-ingested), a hybrid run with the random-weight MiniLM-structure fixture
# (tests/fixtures/models/bert_minilm) in a temporary store, and dense retrieval alone.
set -u
Q=${QUIRE_BIN:?}; F=${QUIRE_FIXTURES:?}
D="$F/beir_tiny"; M="$F/models/bert_minilm"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
export TMPDIR="$T"   # the temporary store goes here; checked to be removed afterwards
fails=0; passes=0
ok() { passes=$((passes+1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails+1)); }

# check LABEL FILE NDCG R100 R1000 MRR [python assertion on j]
check() {
  local label=$1 f=$2
  if python3 - "$f" "$3" "$4" "$5" "$6" "${7:-True}" <<'PY'; then ok; else bad "$label: $(cat "$f")"; fi
import json, sys
j = json.load(open(sys.argv[1]))
m = j["metrics"]
want = dict(zip(["ndcg@10", "recall@100", "recall@1000", "mrr@10"], map(float, sys.argv[2:6])))
for k, v in want.items():
    assert abs(m[k] - v) <= 1e-5, (k, m[k], v)
assert j["queries"] >= 2 and j["queries_run"] >= 2, j
assert eval(sys.argv[6]), j
PY
}
# expected by hand (tests/fixtures/beir_tiny/README.md)
N=0.495925; R=0.5; MRR=0.5

"$Q" eval retrieval --beir "$D" --json > "$T/ref.json" 2> "$T/err" || bad "reference: $(cat "$T/err")"
check "BM25 reference" "$T/ref.json" $N $R $R $MRR 'j["retriever"] == "bm25" and j["queries"] == 5 and j["queries_run"] == 4'

S="$T/store"
"$Q" eval retrieval --beir "$D" --store "$S" --json > "$T/s1.json" 2> "$T/err" || bad "store: $(cat "$T/err")"
check "BM25 store" "$T/s1.json" $N $R $R $MRR 'j["retriever"] == "bm25-store" and not j["dense"] and j["docs"] == 6 and j["chunks"] == 6'
"$Q" eval retrieval --beir "$D" --store "$S" --json > "$T/s2.json" 2> "$T/err" || bad "store again: $(cat "$T/err")"
check "BM25 store reused" "$T/s2.json" $N $R $R $MRR 'j["docs"] == 6 and j["chunks"] == 6'
if "$Q" info --store "$S" --json | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["counts"]["docs"] == 6 and j["formats"] == {"jsonl": 6}'; then ok; else bad "info on the eval store"; fi

"$Q" eval retrieval --beir "$D" --embedder "$M" --chunk-tokens 64 --chunk-overlap 8 --json > "$T/h.json" 2> "$T/err" || bad "hybrid: $(cat "$T/err")"
check "hybrid" "$T/h.json" $N $R $R $MRR 'j["retriever"] == "hybrid" and j["dense"] and j["store"] is None'
"$Q" eval retrieval --beir "$D" --split dense --embedder "$M" --chunk-tokens 64 --chunk-overlap 8 --weight-lexical 0 --json > "$T/d.json" 2> "$T/err" || bad "dense: $(cat "$T/err")"
check "dense alone" "$T/d.json" 1 1 1 1 'j["dense"] and j["queries"] == 2'
if [ -z "$(ls "$T" | grep quire-eval-store)" ]; then ok; else bad "temporary store left behind: $(ls "$T")"; fi

# a store with the embedder: later runs take it from the manifest (no --embedder)
"$Q" eval retrieval --beir "$D" --store "$T/hs" --embedder "$M" --chunk-tokens 64 --chunk-overlap 8 --json > /dev/null 2> "$T/err" || bad "hybrid store: $(cat "$T/err")"
"$Q" eval retrieval --beir "$D" --store "$T/hs" --json > "$T/h2.json" 2> "$T/err" || bad "hybrid store reused: $(cat "$T/err")"
check "hybrid store reused" "$T/h2.json" $N $R $R $MRR 'j["dense"]'

expect_rc() { # expect_rc CODE LABEL -- args
  local want=$1 label=$2; shift 3
  "$Q" "$@" > /dev/null 2> "$T/err"; local rc=$?
  if [ "$rc" = "$want" ]; then ok; else bad "$label: exit $rc, want $want ($(cat "$T/err"))"; fi
}
expect_rc 2 "hits over the retriever's limit" -- eval retrieval --beir "$D" --store "$T/s3" --hits 1001
expect_rc 4 "missing embedder" -- eval retrieval --beir "$D" --embedder "$T/nope"
expect_rc 4 "missing dataset" -- eval retrieval --beir "$T/nope" --store "$T/s4"

# --protocol mteb: one vector per document, no store (values against sentence-transformers: eval_mteb.py)
"$Q" eval retrieval --beir "$D" --split dense --embedder "$M" --protocol mteb --json > "$T/m.json" 2> "$T/err" || bad "mteb: $(cat "$T/err")"
if python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["protocol"] == "mteb" and j["retriever"] == "dense" and j["docs"] == 6 and j["queries"] == 2 and j["queries_run"] == 2, j' "$T/m.json"; then ok; else bad "mteb json: $(cat "$T/m.json")"; fi
if [ -z "$(ls "$T" | grep quire-eval)" ]; then ok; else bad "mteb left a temporary directory: $(ls "$T")"; fi
expect_rc 2 "mteb without an embedder" -- eval retrieval --beir "$D" --protocol mteb
expect_rc 2 "mteb with a store" -- eval retrieval --beir "$D" --embedder "$M" --store "$T/s5" --protocol mteb
expect_rc 2 "unknown protocol" -- eval retrieval --beir "$D" --embedder "$M" --protocol nope
expect_rc 4 "mteb, missing dataset" -- eval retrieval --beir "$T/nope" --embedder "$M" --protocol mteb

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
