#!/usr/bin/env bash
# quire serve under Slurm-style signalling: SIGTERM twice and then SIGINT in a
# burst while a generation streams (Slurm signals the batch shell and the step)
# must still drain and exit 0, removing the endpoint file. Before the fix a
# second SIGTERM reached an OpenBLAS worker thread (started before main, so it
# did not share a blocked signal mask) and killed the process with 143.
set -u
Q=${QUIRE_BIN:?}; F=${QUIRE_FIXTURES:?}
M=$F/models/stories260K/stories260K.gguf
# without the model each round would wait 30 s for a server that never starts
[ -f "$M" ] || { echo "FAIL: $M not found"; exit 1; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fails=0; passes=0
ok() { passes=$((passes+1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails+1)); }

"$Q" ingest "$F/ingest/guide.md" --store "$T/store" --log-level error >/dev/null || { echo "FAIL: ingest"; exit 1; }
for round in 1 2 3 4 5; do
  ep=$T/ep-$round.json
  "$Q" serve --store "$T/store" --model "$M" --endpoint-file "$ep" \
    --grace 5 --log-level warn 2>"$T/log" & pid=$!
  if ! "$Q" wait "$ep" --timeout 30 >/dev/null 2>&1; then bad "round $round: not ready"; kill -9 $pid; continue; fi
  port=$(sed -n 's/.*"port": *\([0-9]*\).*/\1/p' "$ep")
  # a long streamed generation in flight when the signals come
  exec 3<>"/dev/tcp/127.0.0.1/$port"
  body='{"prompt":"Once upon a time","max_tokens":2000,"temperature":0,"stream":true}'
  printf 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' \
    "${#body}" "$body" >&3
  head -c 1 <&3 >/dev/null
  kill -TERM $pid; kill -TERM $pid; kill -INT $pid
  wait $pid; rc=$?
  exec 3<&-
  [ $rc = 0 ] && ok || bad "round $round: exit $rc after SIGTERM, SIGTERM, SIGINT: $(tail -3 "$T/log")"
  [ ! -e "$ep" ] && ok || bad "round $round: endpoint file left behind"
done
echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
