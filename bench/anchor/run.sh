#!/usr/bin/env bash
# BM25 beside a well-known engine: quire (bench/bench_bm25) and Apache Lucene (bench/anchor/Anchor.java,
# Debian 12's liblucene8-java) on the same BEIR datasets, on this machine, in one run, one after the
# other per dataset. Both index title + "\n" + text with Lucene's English analysis and score with BM25
# k1 0.9, b 0.4, single-threaded; both report index time, query latency p50/p99 and queries/s at
# k = 10 and 1000 (wall time, and thread CPU time, which a busy shared machine disturbs less), and
# nDCG@10 / R@100 / R@1000 of the judged queries. Method: bench/anchor/Anchor.java
# and bench/bench_bm25.c headers; figures: bench/RESULTS.md. Not a test and not part of CI.
#
# usage: bash bench/anchor/run.sh [DATASET_DIR...]   (default ../shared/data/scifact ../shared/data/arguana)
# Installs liblucene8-java and a JDK with apt-get when they are missing (root or sudo).
# The table goes to stdout; the full log to ${TMPDIR:-/tmp}/quire-anchor.log.
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=${TMPDIR:-/tmp}
jars=/usr/share/java
core=$(ls $jars/lucene-core-8*.jar 2>/dev/null | head -n1 || true)
if [ -z "$core" ] || ! command -v javac >/dev/null; then
  sudo_=""
  [ "$(id -u)" -eq 0 ] || sudo_=sudo
  $sudo_ apt-get install -y --no-install-recommends liblucene8-java default-jdk-headless >&2
  core=$(ls $jars/lucene-core-8*.jar | head -n1)
fi
analyzers=$(ls $jars/lucene-analyzers-common-8*.jar | head -n1)
cp="$core:$analyzers"

# quire: an optimised build of bench_bm25 (an existing build directory is reused as it is configured)
[ -d build ] || meson setup build -Dbuildtype=release >&2
ninja -C build bench/bench_bm25 >&2
classes="$tmp/quire-anchor-classes"
mkdir -p "$classes"
javac -d "$classes" -cp "$cp" bench/anchor/Anchor.java

if [ $# -eq 0 ]; then set -- ../shared/data/scifact ../shared/data/arguana; fi
log="$tmp/quire-anchor.log"
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "host: $(lscpu | sed -n 's/^Model name: *//p' | head -n1), $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB"
  echo "build: $(meson introspect build --buildoptions 2>/dev/null | tr ',' '\n' | grep -A2 '"name": "buildtype"' | sed -n 's/.*"value": "\(.*\)".*/buildtype \1/p' | head -n1)"
  echo "java: $(java -version 2>&1 | head -n1)"
  echo "load before: $(uptime)"
} | tee "$log" >&2
for d in "$@"; do
  ./build/bench/bench_bm25 "$d" 2>&1 | tee -a "$log" >&2
  # serial GC: one collector thread; the JIT compiles in the background (not in thread CPU time)
  java -XX:+UseSerialGC -Xmx2g -cp "$classes:$cp" Anchor "$d" 2>&1 | tee -a "$log" >&2
done
echo "load after: $(uptime)" | tee -a "$log" >&2

# side-by-side table from the RESULT / QUALITY lines
awk '
function kv(line, arr,   n, i, f, p) {
  n = split(line, f, " ")
  for (i = 2; i <= n; i++) { p = index(f[i], "="); if (p) arr[substr(f[i], 1, p - 1)] = substr(f[i], p + 1) }
}
/^RESULT / { delete a; kv($0, a); key = a["dataset"] SUBSEP a["engine"]
  if (!(key in seen)) { seen[key] = 1; order[++n] = key }
  r[key] = sprintf("%s | %.3f (%.3f) | %.3f / %.3f / %.3f | %.0f | %.3f / %.3f / %.3f | %.0f",
    a["terms"], a["index_wall"], a["index_cpu"],
    a["k10_p50"], a["k10_cpu_p50"], a["k10_p99"], a["k10_qps"],
    a["k1000_p50"], a["k1000_cpu_p50"], a["k1000_p99"], a["k1000_qps"]) }
/^QUALITY / { delete a; kv($0, a); key = a["dataset"] SUBSEP a["engine"]
  q[key] = sprintf("%s | %s | %s", a["ndcg10"], a["r100"], a["r1000"]) }
END {
  print "| dataset | engine | terms | index s wall (CPU) | k=10 ms: p50 wall / p50 CPU / p99 wall | k=10 queries/s | k=1000 ms: p50 wall / p50 CPU / p99 wall | k=1000 queries/s | nDCG@10 | R@100 | R@1000 |"
  print "|---|---|---|---|---|---|---|---|---|---|---|"
  for (i = 1; i <= n; i++) { split(order[i], k, SUBSEP); print "| " k[1] " | " k[2] " | " r[order[i]] " | " q[order[i]] " |" }
}' "$log"
