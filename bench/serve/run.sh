#!/usr/bin/env bash
# Load test of `quire serve` with wrk, loopback only, bounded in time:
#   /v1/search           BM25 store of the SciFact corpus (../shared/data/scifact, 5,183 docs)
#   /v1/ask extractive   same store, no LLM
#   /v1/ask stories260K  same store, tests/fixtures/models/stories260K as the LLM (k 3, 32 tokens, greedy)
# each with 1, 8 and 64 connections for DUR (default 10s). Queries are the SciFact test queries,
# cycled by post.lua so consecutive requests differ. Prints one markdown row per run (requests/s,
# p50/p99 latency from wrk --latency, non-2xx count) plus the machine and its load (uptime), the
# format of the "Service load (wrk)" section of bench/RESULTS.md.
# Each row also gives the server's CPU time per request: utime + stime of the server process
# (/proc/PID/stat, all its threads) over the row, divided by the requests it answered on that
# route (/metrics, which also counts those wrk gave up on at the end). For /v1/search,
# "retrieval" is the CPU time per query of the same retrieval alone (build/bench/bench_retrieve:
# the same queries, k 10, qr_question_keywords + qr_retrieve_query_lex on one thread, best of 3
# passes) and "server own" = server CPU - retrieval: what HTTP, JSON, logging, metrics and the
# threads cost per request. CPU times, unlike latencies, hold on a shared machine.
#   bash bench/serve/run.sh                      # after a build (build/cli/quire)
#   DUR=5s CONNS="1 8" bash bench/serve/run.sh   # shorter
#   BASE=main bash bench/serve/run.sh            # also the binary of git ref main (built in a temp
#                                                # dir, CPU-only), each row before and after
#   ROUTES=search bash bench/serve/run.sh        # /v1/search only (search, ask, llm: any of them)
set -euo pipefail
cd "$(dirname "$0")/../.."
Q=${QUIRE_BIN:-$PWD/build/cli/quire}
SHARED=${QUIRE_SHARED:-$PWD/../shared}
DUR=${DUR:-10s}
CONNS=${CONNS:-"1 8 64"}
ROUTES=${ROUTES:-"search ask llm"}
BASE=${BASE:-}
DATA=$SHARED/data/scifact
LLM=$PWD/tests/fixtures/models/stories260K/stories260K.gguf
HERE=$PWD/bench/serve

if ! command -v wrk >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get install -y -qq --no-install-recommends wrk >/dev/null || {
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends wrk >/dev/null; }
fi
[ -x "$Q" ] || { echo "no quire binary at $Q (build first)" >&2; exit 1; }

T=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$T"
}
trap cleanup EXIT

BASE_Q=""
if [ -n "$BASE" ]; then
  # the same build options as a plain CPU build, from a copy of the ref's tree
  mkdir -p "$T/base-src"
  git archive "$BASE" | tar -x -C "$T/base-src"
  # bench_retrieve measures the base's own retrieval (its API is older than the program)
  if ! grep -q bench_retrieve "$T/base-src/bench/meson.build"; then
    cp bench/bench_retrieve.c "$T/base-src/bench/"
    echo "executable('bench_retrieve', 'bench_retrieve.c', dependencies : quire_dep)" >> "$T/base-src/bench/meson.build"
  fi
  (cd "$T/base-src" && meson setup build -Dcuda=disabled >/dev/null &&
    nice ninja -C build cli/quire bench/bench_retrieve >/dev/null) || { echo "cannot build $BASE" >&2; exit 1; }
  BASE_Q=$T/base-src/build/cli/quire
fi

"$Q" ingest "$DATA/corpus.jsonl" --store "$T/store" --json --log-level error > "$T/ingest.json"
python3 - "$DATA/queries.jsonl" "$T" <<'PY'
import json, sys
qs = [json.loads(l)["text"] for l in open(sys.argv[1]) if l.strip()]
out = sys.argv[2]
with open(out + "/queries.txt", "w") as f:
    for q in qs: f.write(" ".join(q.split()) + "\n")
with open(out + "/search.jsonl", "w") as f:
    for q in qs: f.write(json.dumps({"query": q, "k": 10}) + "\n")
with open(out + "/ask.jsonl", "w") as f:
    for q in qs: f.write(json.dumps({"question": q, "k": 5}) + "\n")
with open(out + "/ask_llm.jsonl", "w") as f:
    for q in qs: f.write(json.dumps({"question": q, "k": 3, "max_tokens": 32, "temperature": 0}) + "\n")
PY

# start BIN NAME ARGS...: a server on a free loopback port; sets URL and SPID
start() {
  local bin=$1 name=$2; shift 2
  "$bin" serve --listen 127.0.0.1:0 --endpoint-file "$T/$name.ep" --store "$T/store" --log-level warn "$@" \
    > "$T/$name.log" 2>&1 &
  SPID=$!
  PIDS+=($SPID)
  "$Q" wait "$T/$name.ep" --timeout 120 >/dev/null
  URL=$(python3 -c 'import json,sys; e=json.load(open(sys.argv[1])); print(e.get("url") or "http://%s:%s" % (e["host"], e["port"]))' "$T/$name.ep")
}

# quiet: wait (at most 60 s) until the server has nothing in flight. wrk closes its connections
# at the end of a run while requests are still being served; their work goes on and counts
# against --max-inflight, so the next run would start with 503s.
quiet() {
  local i busy
  for i in $(seq 600); do
    busy=$(curl -s "$URL/metrics" | awk '/^quire_inflight_requests |^quire_sched_running |^quire_sched_queue_depth / {s += $2} END {print s + 0}')
    [ "$busy" = 0 ] && return 0
    sleep 0.1
  done
  echo "warning: still busy after 60 s" >&2
}

# cpu: utime + stime of the server (all threads, exited ones included), in clock ticks
cpu() { awk '{print $14 + $15}' "/proc/$SPID/stat"; }
# answered NAME: requests the server answered on route NAME (/metrics), wrk's cut-off ones included
answered() {
  curl -s "$URL/metrics" | awk -v r="route=\"$1\"" 'index($0, "quire_http_requests_total{") == 1 && index($0, r) {s += $2}
    END {print s + 0}'
}

# run WHICH LABEL ROUTE BODIES RETR: wrk with each connection count; RETR: retrieval CPU ms per
# query for "server own", or empty
run() {
  local which=$1 label=$2 route=$3 bodies=$4 retr=${5:-} c out rps p50 p99 n non2xx c0 c1 a0 a1 cpu_ms own_ms
  local tck; tck=$(getconf CLK_TCK)
  for c in $CONNS; do
    quiet
    a0=$(answered "$route"); c0=$(cpu)
    out=$(BODIES=$bodies wrk -t $(( c < 2 ? 1 : 2 )) -c "$c" -d "$DUR" --timeout 30s --latency \
      -s "$HERE/post.lua" "$URL$route" 2>&1)
    quiet
    c1=$(cpu); a1=$(answered "$route")
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
    cpu_ms=$(awk -v d=$((c1 - c0)) -v t="$tck" -v n=$((a1 - a0)) 'BEGIN {printf "%.3f", n ? d / t * 1000 / n : 0}')
    own_ms="—"
    [ -n "$retr" ] && own_ms=$(awk -v a="$cpu_ms" -v b="$retr" 'BEGIN {printf "%.3f", a - b}')
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$which" "$label" "$c" "$DUR" "$n" "$rps" \
      "$p50" "$p99" "${non2xx:-0}" "$cpu_ms" "${retr:-—}" "$own_ms"
    echo "$out" >> "$T/wrk-raw.txt"
  done
}

# retrieval BIN: CPU ms per query of /v1/search's retrieval alone with BIN's code (bench_retrieve
# next to BIN's build; empty when it is not there)
retrieval() {
  local b; b=$(dirname "$1")/../bench/bench_retrieve
  [ -x "$b" ] && "$b" "$T/store" "$T/queries.txt" 10 3 | awk '{print $6}'
}

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/ {print $2}') GiB;" \
  "$("$Q" version 2>/dev/null | head -n 1); wrk $(wrk -v 2>&1 | head -n 1 | awk '{print $2}')"
echo "store: SciFact corpus.jsonl, BM25 only: $(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["docs"], "docs,", j["chunks"], "chunks")' "$T/ingest.json")"
echo "load before: $(uptime)"
echo
echo "| binary | route | connections | duration | requests | requests/s | p50 | p99 | non-2xx |" \
  "server CPU ms/request | retrieval CPU ms/query | server own ms/request |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
# rows: each binary in turn (the base first) for each route, so that both see similar load
bins=("$Q"); names=(this)
[ -n "$BASE_Q" ] && bins=("$BASE_Q" "$Q") && names=("$BASE" this)
for r in $ROUTES; do
  for i in "${!bins[@]}"; do
    case $r in
    search) retr=$(retrieval "${bins[$i]}")
            start "${bins[$i]}" "s$i"; run "${names[$i]}" "/v1/search (BM25, k 10)" /v1/search "$T/search.jsonl" "$retr" ;;
    ask) start "${bins[$i]}" "a$i"; run "${names[$i]}" "/v1/ask extractive (k 5)" /v1/ask "$T/ask.jsonl" ;;
    llm) start "${bins[$i]}" "l$i" --model "$LLM"
         run "${names[$i]}" "/v1/ask stories260K (k 3, 32 tokens)" /v1/ask "$T/ask_llm.jsonl" ;;
    esac
    kill -TERM "$SPID"; wait "$SPID" 2>/dev/null || true
  done
done
echo
echo "load after: $(uptime)"
