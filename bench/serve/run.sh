#!/usr/bin/env bash
# Load test of `quire serve` with wrk, loopback only, bounded in time:
#   /v1/search           BM25 store of the SciFact corpus (../shared/data/scifact, 5,183 docs)
#   /v1/ask extractive   same store, no LLM
#   /v1/ask stories260K  same store, tests/fixtures/models/stories260K as the LLM (k 3, 32 tokens, greedy)
# each with 1, 8 and 64 connections for DUR (default 10s). Queries are the SciFact test queries,
# cycled by post.lua so consecutive requests differ. Prints one markdown row per run (requests/s,
# p50/p99 latency from wrk --latency, non-2xx count) plus the machine and its load (uptime), the
# format of the "Service load (wrk)" section of bench/RESULTS.md.
#   bash bench/serve/run.sh                      # after a build (build/cli/quire)
#   DUR=5s CONNS="1 8" bash bench/serve/run.sh   # shorter
set -euo pipefail
cd "$(dirname "$0")/../.."
Q=${QUIRE_BIN:-$PWD/build/cli/quire}
SHARED=${QUIRE_SHARED:-$PWD/../shared}
DUR=${DUR:-10s}
CONNS=${CONNS:-"1 8 64"}
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

"$Q" ingest "$DATA/corpus.jsonl" --store "$T/store" --json --log-level error > "$T/ingest.json"
python3 - "$DATA/queries.jsonl" "$T" <<'PY'
import json, sys
qs = [json.loads(l)["text"] for l in open(sys.argv[1]) if l.strip()]
out = sys.argv[2]
with open(out + "/search.jsonl", "w") as f:
    for q in qs: f.write(json.dumps({"query": q, "k": 10}) + "\n")
with open(out + "/ask.jsonl", "w") as f:
    for q in qs: f.write(json.dumps({"question": q, "k": 5}) + "\n")
with open(out + "/ask_llm.jsonl", "w") as f:
    for q in qs: f.write(json.dumps({"question": q, "k": 3, "max_tokens": 32, "temperature": 0}) + "\n")
PY

# start NAME ARGS...: a server on a free loopback port; sets URL
start() {
  local name=$1; shift
  "$Q" serve --listen 127.0.0.1:0 --endpoint-file "$T/$name.ep" --store "$T/store" --log-level warn "$@" \
    > "$T/$name.log" 2>&1 &
  PIDS+=($!)
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

# run LABEL ROUTE BODIES: wrk with each connection count
run() {
  local label=$1 route=$2 bodies=$3 c out rps p50 p99 n non2xx
  for c in $CONNS; do
    quiet
    out=$(BODIES=$bodies wrk -t $(( c < 2 ? 1 : 2 )) -c "$c" -d "$DUR" --timeout 30s --latency \
      -s "$HERE/post.lua" "$URL$route" 2>&1)
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$c" "$DUR" "$n" "$rps" "$p50" "$p99" "${non2xx:-0}"
    echo "$out" >> "$T/wrk-raw.txt"
  done
}

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/ {print $2}') GiB;" \
  "$("$Q" version 2>/dev/null | head -n 1); wrk $(wrk -v 2>&1 | head -n 1 | awk '{print $2}')"
echo "store: SciFact corpus.jsonl, BM25 only: $(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["docs"], "docs,", j["chunks"], "chunks")' "$T/ingest.json")"
echo "load before: $(uptime)"
echo
echo "| route | connections | duration | requests | requests/s | p50 | p99 | non-2xx |"
echo "|---|---|---|---|---|---|---|---|"
start extractive
run "/v1/search (BM25, k 10)" /v1/search "$T/search.jsonl"
run "/v1/ask extractive (k 5)" /v1/ask "$T/ask.jsonl"
start llm --model "$LLM"
run "/v1/ask stories260K (k 3, 32 tokens)" /v1/ask "$T/ask_llm.jsonl"
echo
echo "load after: $(uptime)"
