#!/usr/bin/env bash
# A store its user cannot write (README "Sharing a store"): root builds the stores, then the unprivileged
# user nobody reads them (info, BM25 and dense search, merge as a source, eval, serve with an HTTP search)
# from a root-owned read-only store whose meta.lmdb-lock it cannot open for writing, and from a copy in a
# directory it cannot write that has no lock file; its writers (ingest, rm, merge into it, POST/DELETE
# /v1/documents) are refused naming the store and the cause. The writer rule: a reader without LMDB's
# lock table and a writer exclude each other (both ways, with a clear message); with a writable
# meta.lmdb-lock, a reader (serve) keeps answering while another process ingests, and every reader sees
# one committed generation (same generation, same counts, whole files only; never going back); a dense
# serve takes the vectors of another process's ingest once it ends. A read-only bind mount
# (EROFS) is tried when mount namespaces are allowed. The reference for every read is the same query run
# by root on the store before it was made read-only. Runs as root (CI); exits 77 when it cannot be
# another user.
set -u
Q0=${QUIRE_BIN:?}; F=${QUIRE_FIXTURES:?}
fails=0; passes=0
ok() { passes=$((passes+1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails+1)); }

if [ "$(id -u)" != 0 ]; then echo "SKIP: needs root to run commands as another user (nobody)"; exit 77; fi
NUID=$(id -u nobody 2>/dev/null) || { echo "SKIP: no user nobody to read the store as"; exit 77; }
NGID=$(getent group nogroup | cut -d: -f3); [ -n "$NGID" ] || NGID=$(id -g nobody)
if command -v setpriv > /dev/null; then
  AS=(setpriv --reuid="$NUID" --regid="$NGID" --clear-groups --)
elif command -v runuser > /dev/null; then
  AS=(runuser -u nobody --)
else
  echo "SKIP: neither setpriv nor runuser to run as nobody"; exit 77
fi

# Everything nobody runs or reads lives in T (0755): the checkout (and the build) may be under /root.
T=""
for base in "${TMPDIR:-/tmp}" /tmp /dev/shm; do
  T=$(mktemp -d "$base/quire-ro-XXXXXX" 2> /dev/null) || continue
  chmod 755 "$T"
  if "${AS[@]}" test -x "$T"; then break; fi
  rm -rf "$T"; T=""
done
[ -n "$T" ] || { echo "SKIP: no temporary directory nobody can reach"; exit 77; }
SERVE_PID=""
cleanup() { [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2> /dev/null; chmod -R u+w "$T" 2> /dev/null; rm -rf "$T"; }
trap cleanup EXIT
mkdir -p "$T/bin" "$T/home" "$T/out"
cp "$Q0" "$T/bin/quire" && chmod 755 "$T/bin/quire"
cp -r "$F/models/bert_minilm" "$T/model" && chmod -R a+rX "$T/model"
chown "$NUID:$NGID" "$T/home" "$T/out"
Q="$T/bin/quire"
N() { env HOME="$T/home" "${AS[@]}" "$@"; }   # run as nobody

# corpus: one word of each file is in no other file
mkdir "$T/docs"
printf 'Kelp forests shelter sea otters along the rocky coast.\n' > "$T/docs/otters.txt"
printf 'Glaciers carve fjords over thousands of years.\n' > "$T/docs/fjords.txt"
printf 'A sourdough starter needs flour, water and patience.\n' > "$T/docs/bread.txt"
printf 'Comets grow bright tails when they near the sun.\n' > "$T/docs/comets.txt"
chmod -R a+rX "$T/docs"
"$Q" ingest "$T/docs" --store "$T/s" --chunk-tokens 16 --chunk-overlap 4 > /dev/null 2> "$T/err" || bad "root ingest: $(cat "$T/err")"
"$Q" ingest "$T/docs" --store "$T/sd" --embedder "$T/model" --chunk-tokens 64 --chunk-overlap 8 > /dev/null 2> "$T/err" ||
  bad "root ingest with an embedder: $(cat "$T/err")"

# results of a search --json, without its timing
results() { python3 -c 'import json,sys; j=json.load(sys.stdin); print(json.dumps([[r["path"], r["chunk_id"], round(r["score"], 6), r["dense_rank"], r["bm25_rank"]] for r in j["results"]]))'; }
"$Q" search otters --store "$T/s" --json 2> /dev/null | results > "$T/ref_bm25" || bad "root search"
"$Q" search "sea otters in kelp" --store "$T/sd" --json 2> /dev/null | results > "$T/ref_dense" || bad "root dense search"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r[0][0].endswith("/otters.txt") and r[0][4] == 1, r' "$T/ref_bm25" ||
  bad "reference BM25 search: $(cat "$T/ref_bm25")"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r and r[0][3] == 1, r' "$T/ref_dense" ||
  bad "reference dense search has a dense hit: $(cat "$T/ref_dense")"

cp -r "$T/sd" "$T/sd2"   # for the serve that sees another process's ingest (below)
# read-only for nobody: root-owned, no write bit anywhere (meta.lmdb-lock exists, so only LMDB's lock open fails)
chown -R root:root "$T/s" "$T/sd"
chmod -R a-w,a+rX "$T/s" "$T/sd"
# a copy without the lock file in a directory nobody cannot write (a snapshot, a copy on project space)
mkdir "$T/snap" && cp -r "$T/s" "$T/snap/s" && rm -f "$T/snap/s/meta.lmdb-lock" && chmod -R a-w,a+rX "$T/snap"

reads() { # reads LABEL STORE: what nobody can do with a store it cannot write
  local label=$1 S=$2
  if N "$Q" info --store "$S" --json > "$T/out/info" 2> "$T/err" &&
     python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["counts"]["docs"] == 4, j' "$T/out/info"; then ok
  else bad "$label: info: $(cat "$T/err")"; fi
  if N "$Q" search otters --store "$S" --json 2> "$T/err" | results > "$T/got" && cmp -s "$T/got" "$T/ref_bm25"; then ok
  else bad "$label: search: $(cat "$T/got") vs $(cat "$T/ref_bm25"): $(cat "$T/err")"; fi
  rm -rf "$T/out/m"
  if N "$Q" merge --store "$T/out/m" "$S" > /dev/null 2> "$T/err" &&
     N "$Q" search otters --store "$T/out/m" --json 2> /dev/null | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["results"][0]["path"].endswith("/otters.txt"), j'; then ok
  else bad "$label: merge as a source: $(cat "$T/err")"; fi
  # writers: refused, naming the store and why
  local w
  for w in "ingest $T/docs --store $S" "rm $T/docs/otters.txt --store $S" "merge --store $S $T/out/m"; do
    # shellcheck disable=SC2086
    if N "$Q" $w > /dev/null 2> "$T/err"; then bad "$label: nobody's '$w' succeeded"
    elif grep -q "$S: the store is read-only for this user" "$T/err"; then ok
    else bad "$label: '$w': unclear error: $(cat "$T/err")"; fi
  done
}
reads "root-owned read-only store" "$T/s"
reads "copy without a lock file in a read-only directory" "$T/snap/s"
[ ! -e "$T/snap/s/meta.lmdb-lock" ] && ok || bad "a reader created meta.lmdb-lock in a read-only directory"

# dense: the store's embedder (its manifest names $T/model), as nobody
if N "$Q" search "sea otters in kelp" --store "$T/sd" --json 2> "$T/err" | results > "$T/got" && cmp -s "$T/got" "$T/ref_dense"; then ok
else bad "dense search as nobody: $(cat "$T/got") vs $(cat "$T/ref_dense"): $(cat "$T/err")"; fi
# eval retrieval --store on a read-only store: evaluates what it holds (beir_tiny, ingested by root)
cp -r "$F/beir_tiny" "$T/beir" && chmod -R a+rX "$T/beir"
"$Q" ingest "$T/beir/corpus.jsonl" --store "$T/sb" > /dev/null 2> "$T/err" || bad "root ingest of beir_tiny: $(cat "$T/err")"
chmod -R a-w,a+rX "$T/sb"
# metrics derived by hand in tests/fixtures/beir_tiny/README.md (as test_eval_store.sh)
if N "$Q" eval retrieval --beir "$T/beir" --store "$T/sb" --json > "$T/out/ev" 2> "$T/err" &&
   python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["metrics"]; assert abs(m["ndcg@10"]-0.495925) < 1e-5 and m["mrr@10"] == 0.5, m' "$T/out/ev"; then ok
else bad "eval retrieval --store on a read-only store: $(cat "$T/err")"; fi

# ---- serve as nobody on the read-only store
start_serve() { # start_serve STORE: as nobody; sets SERVE_PID and URL
  rm -f "$T/out/ep.json"
  env HOME="$T/home" "${AS[@]}" "$Q" serve --store "$1" --listen 127.0.0.1:0 --endpoint-file "$T/out/ep.json" \
    > "$T/out/serve.log" 2>&1 &   # not through N: $! must be quire itself (env and setpriv exec it)
  SERVE_PID=$!
  for _ in $(seq 1 150); do [ -s "$T/out/ep.json" ] && break; sleep 0.1; done
  URL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$T/out/ep.json" 2> /dev/null)
  [ -n "$URL" ] || { bad "serve did not start: $(cat "$T/out/serve.log")"; return 1; }
}
stop_serve() { kill "$SERVE_PID" 2> /dev/null; wait "$SERVE_PID" 2> /dev/null; SERVE_PID=""; }
http() { # http METHOD PATH [BODY] -> prints the status, body in $T/body
  curl -s -o "$T/body" -w '%{http_code}' -X "$1" -H 'Content-Type: application/json' ${3:+--data "$3"} "$URL$2"
}
if start_serve "$T/s"; then
  [ "$(http GET /ready)" = 200 ] && ok || bad "/ready on a read-only store: $(cat "$T/body")"
  if [ "$(http POST /v1/search '{"query": "otters", "k": 3}')" = 200 ] &&
     python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["results"][0]["path"].endswith("/otters.txt"), j' "$T/body"; then ok
  else bad "serve search on a read-only store: $(cat "$T/body")"; fi
  st=$(http POST /v1/documents '{"text": "new text", "name": "n.txt"}')
  if [ "$st" = 403 ] && grep -q '"read_only"' "$T/body" && grep -q '"permission_error"' "$T/body" && grep -q "read-only for this user" "$T/body"; then ok
  else bad "POST /v1/documents on a read-only store: $st $(cat "$T/body")"; fi
  st=$(http DELETE /v1/documents/1)
  if [ "$st" = 403 ] && grep -q '"read_only"' "$T/body"; then ok; else bad "DELETE on a read-only store: $st $(cat "$T/body")"; fi
  [ ! -e "$T/s/posted" ] && ok || bad "POST wrote STORE/posted on a read-only store"
  [ "$(http GET /ready)" = 200 ] && ok || bad "/ready after refused writes: $(cat "$T/body")"
  # the lock-less reader holds the writers off: root (who may write) is refused, naming why
  if "$Q" ingest "$T/docs" --store "$T/s" --chunk-tokens 16 --chunk-overlap 4 > /dev/null 2> "$T/err"; then bad "root ingest while a lock-less serve reads"
  elif grep -q "being read by a process that cannot write meta.lmdb-lock" "$T/err"; then ok
  else bad "root ingest during a lock-less read: unclear error: $(cat "$T/err")"; fi
  [ "$(http POST /v1/search '{"query": "otters"}')" = 200 ] && ok || bad "serve search after the refused ingest"
  stop_serve
fi
# ...and a writer holds the lock-less readers off (this shell holding write.lock stands for a running ingest)
exec 9< "$T/s/write.lock"
if flock -x -n 9; then
  if N "$Q" info --store "$T/s" > /dev/null 2> "$T/err" 9<&-; then bad "lock-less info while a writer runs"
  elif grep -q "another process is writing this store" "$T/err"; then ok
  else bad "lock-less info during a write: unclear error: $(cat "$T/err")"; fi
else
  bad "write.lock still held after the serve stopped"
fi
exec 9<&-

# ---- meta.lmdb-lock writable for the readers: they use LMDB's reader table, and a writer may run meanwhile
chmod a+w "$T/s/meta.lmdb-lock"
mkdir "$T/more"   # 120 files of 450 chunks of 16 tokens: 54,000 chunks, about 14 commits of 4096 chunks
python3 - "$T/more" <<'PY'
import sys
for i in range(1, 121):
    with open("%s/docs2_%d.txt" % (sys.argv[1], i), "w") as f:
        f.write("\n".join("batch%03d line %03d of the added text about walruses" % (i, k) for k in range(600)) + "\n")
PY
chmod -R a+rX "$T/more"
C0=$("$Q" info --store "$T/s" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["counts"]["chunks"])')
if start_serve "$T/s"; then
  "$Q" ingest "$T/more" --store "$T/s" > /dev/null 2> "$T/out/ingest.err" & ING=$!
  codes=""; infos=0
  while kill -0 "$ING" 2> /dev/null; do
    codes="$codes $(http POST /v1/search '{"query": "walruses otters", "k": 3}')"
    infos=$((infos+1))
    N "$Q" info --store "$T/s" --json > "$T/out/info.$infos" 2>> "$T/out/info.err"
  done
  wait "$ING" && ok || bad "root ingest while nobody reads with the lock table: $(cat "$T/out/ingest.err")"
  if [ -n "$codes" ] && [ -z "$(echo "$codes" | tr ' ' '\n' | grep -vx '200' | grep .)" ]; then ok
  else bad "serve searches during an ingest answered: $codes"; fi
  [ -s "$T/out/info.err" ] && bad "info during an ingest failed: $(head -3 "$T/out/info.err")" || ok
  infos=$((infos+1))
  N "$Q" info --store "$T/s" --json > "$T/out/info.$infos"
  for i in $(seq 1 "$infos"); do
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); c=j["counts"]; print(j["generation"], c["docs"], c["chunks"])' "$T/out/info.$i" >> "$T/gens" ||
      bad "info $i during the ingest: $(cat "$T/out/info.$i")"
  done
  # one generation, one state; generations never go back; the last one holds all 124 files; every state
  # is whole files (the 120 files chunk alike: chunks = first chunks + added files * chunks per file)
  if python3 - "$T/gens" "$C0" <<'PY'; then ok; else bad "reader states during an ingest: $(tr '\n' ' ' < "$T/gens")"; fi
import sys
rows = [tuple(map(int, l.split())) for l in open(sys.argv[1])]
seen = {}
for g, d, c in rows:
    assert seen.setdefault(g, (d, c)) == (d, c), (g, seen[g], (d, c))
assert [r[0] for r in rows] == sorted(r[0] for r in rows), rows
assert rows[-1][1] == 124, rows[-1]
c0 = int(sys.argv[2])
per = (rows[-1][2] - c0) // 120
assert per * 120 == rows[-1][2] - c0, (rows[-1], c0)
for g, d, c in rows:
    assert c == c0 + (d - 4) * per, ("torn", g, d, c, c0, per)
PY
  echo "info: $((infos-1)) reads and $(echo "$codes" | wc -w) HTTP searches during the ingest, generations seen: $(cut -d' ' -f1 "$T/gens" | sort -un | tr '\n' ' ')"
  # the running serve sees the committed documents (BM25 reads the store live)
  if [ "$(http POST /v1/search '{"query": "walruses batch007", "k": 3}')" = 200 ] &&
     python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["results"] and j["results"][0]["path"].endswith("/docs2_7.txt"), j' "$T/body"; then ok
  else bad "serve after another process's ingest: $(cat "$T/body")"; fi
  stop_serve
fi

# a dense serve (nobody, with the lock table) takes the vectors of another process's ingest once it ends
chmod a+w "$T/sd2/meta.lmdb-lock"; chmod a+rX "$T/sd2"
if start_serve "$T/sd2"; then
  # candidates_dense: the vectors the serve's index returns for a k over the store's size
  cand() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["candidates_dense"])' "$T/body"; }
  [ "$(http POST /v1/search '{"query": "walrus tusks on the ice", "k": 10}')" = 200 ] && [ "$(cand)" = 4 ] &&
    ok || bad "dense serve before the ingest: $(cat "$T/body")"
  mkdir "$T/new" && printf 'Walrus tusks scrape the sea ice.\n' > "$T/new/walrus.txt" && chmod -R a+rX "$T/new"
  "$Q" ingest "$T/new" --store "$T/sd2" --embedder "$T/model" > /dev/null 2> "$T/err" || bad "root ingest into a served dense store: $(cat "$T/err")"
  if [ "$(http POST /v1/search '{"query": "walrus tusks on the ice", "k": 10}')" = 200 ] && [ "$(cand)" = 5 ] &&
     python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert any(r["path"].endswith("/walrus.txt") and r["dense_rank"] for r in j["results"]), j' "$T/body"; then ok
  else bad "dense serve after another process's ingest: $(cat "$T/body")"; fi
  stop_serve
fi

# ---- a read-only bind mount (EROFS: even root cannot write it)
mkdir "$T/ro"
if unshare -m true 2> /dev/null && unshare -m sh -c "mount --bind -o ro '$T/sd' '$T/ro'" 2> /dev/null; then
  unshare -m sh -c "mount --bind -o ro '$T/sd' '$T/ro' &&
    '$Q' search 'sea otters in kelp' --store '$T/ro' --json > '$T/out/romount' 2> '$T/err.ro';
    '$Q' ingest '$T/docs' --store '$T/ro' > /dev/null 2> '$T/err.ri'; echo \$? > '$T/out/ri.rc'" 2> /dev/null
  if results < "$T/out/romount" > "$T/got" 2> /dev/null && cmp -s "$T/got" "$T/ref_dense"; then ok
  else bad "search on a read-only mount: $(cat "$T/err.ro")"; fi
  if [ "$(cat "$T/out/ri.rc")" != 0 ] && grep -q "read-only file system" "$T/err.ri"; then ok
  else bad "ingest on a read-only mount: $(cat "$T/err.ri")"; fi
else
  echo "note: no mount namespace here (unshare -m): the read-only bind mount part did not run"
fi

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
