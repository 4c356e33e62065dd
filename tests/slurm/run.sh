#!/usr/bin/env bash
# End-to-end test of the Slurm job scripts (configs/slurm/) on a real
# single-node Slurm cluster started here, privately (../shared/notes/slurm-ci.md):
#
#   array ingest (3 tasks, fake GPUs) -> merge (--dependency=afterok) -> the
#   merged store holds the chunks of a plain ingest -> a task submitted alone
#   (sbatch --array=2, COUNT 1) is refused by --shard auto without a shard count
#   -> task 1 "fails" (its shard and the merged store removed) and is re-run
#   with the command ingest.sh printed (sbatch --array=1, TASKS=3) -> it
#   rebuilds shard 1/3, the printed merge joins the shards without a duplicate
#   -> merge.sbatch refuses a missing or stray shard -> serve job -> quire wait
#   -> curl /v1/search and /v1/ask (extractive, bearer token) -> client.sh ->
#   ask job (answer file) -> scancel -> quire serve drains, exits 0 (the job's
#   exit code) and removes its endpoint file -> the store is intact (same chunk
#   count, search works).
#
# Runs when CI is set (.ci/run) or QUIRE_SLURM_TEST=1: it starts daemons and
# runs jobs on every core, too heavy for each `meson test` on a shared machine.
# Needs root and the Debian packages slurmctld slurmd slurm-client munge curl
# (tools/deps.sh installs them); exits 77 (meson: SKIP) without them. The
# cluster is private to this run: its own munged socket, ports, state and
# spool directories and slurm.conf under a temporary directory (SLURM_CONF),
# nothing in /etc is touched. Runs are serialised with a lock file. Only the
# daemons this script started are stopped, by their pids. QUIRE_KEEP_TMP=1
# keeps the directory (logs, stores) for inspection.
set -uo pipefail

skip() { echo "SKIP: $*"; exit 77; }
T=""
# It starts daemons and runs jobs on every core: on CI (.ci/run sets CI) or on request only, not in
# every developer's `meson test` on a shared machine.
[ -n "${CI:-}" ] || [ -n "${QUIRE_SLURM_TEST:-}" ] || skip "runs on CI (CI set) or with QUIRE_SLURM_TEST=1"
[ "$(id -u)" -eq 0 ] || skip "needs root to start slurmctld/slurmd"
for b in slurmctld slurmd sbatch squeue scancel scontrol sinfo munged curl flock; do
    command -v "$b" >/dev/null 2>&1 || skip "$b not installed (tools/deps.sh: slurmctld slurmd slurm-client munge curl)"
done
SRC=$(cd "$(dirname "$0")/../.." && pwd)
QUIRE=${QUIRE_BIN:-$SRC/build/cli/quire}
[ -x "$QUIRE" ] || skip "no quire binary ($QUIRE)"
EMB=${QUIRE_FIXTURES:-$SRC/tests/fixtures}/models/bert_minilm
HAVE_SERVE=1
"$QUIRE" serve --help >/dev/null 2>&1 || HAVE_SERVE=0

# (fd 9 holds the lock; the daemons are started with it closed, so that a
# daemon left behind by a killed run cannot hold up later runs)
exec 9>/run/lock/quire-slurm-test.lock 2>/dev/null || exec 9>/tmp/quire-slurm-test.lock
flock -w 90 9 || skip "another Slurm test run has held the lock for 90 s"

T=$(mktemp -d /tmp/quire-slurm-XXXXXX)
chmod 755 "$T"
export SLURM_CONF=$T/etc/slurm.conf
unset SLURM_JOB_ID SLURM_ARRAY_TASK_ID SLURM_ARRAY_TASK_COUNT SLURM_ARRAY_TASK_MIN SLURM_ARRAY_TASK_STEP
t0=$(date +%s%N)
failures=0
jobs_submitted=()

log() { local ms=$((($(date +%s%N) - t0) / 1000000)); printf '[%d.%03ds] %s\n' $((ms / 1000)) $((ms % 1000)) "$*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
check() { # check DESCRIPTION COMMAND... (compound conditions: check DESCRIPTION eval '...')
    local what=$1; shift
    if "$@"; then echo "ok: $what"; else fail "$what"; fi
}

# Slurm clients retry for minutes when the controller is gone: bound every call.
squeue() { timeout 20 squeue "$@"; }
scontrol() { timeout 20 scontrol "$@"; }
scancel() { timeout 20 scancel "$@"; }
sbatch() { timeout 30 sbatch "$@"; }
sinfo() { timeout 20 sinfo "$@"; }

stop_pidfile() { # TERM the daemon named in a pid file we wrote, wait up to 5 s, then KILL
    local f=$1 pid
    [ -s "$f" ] || return 0
    pid=$(cat "$f")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
}

cleanup() {
    local rc=$?
    [ -n "$T" ] || return
    if [ -s "$T/slurmctld.pid" ]; then
        [ ${#jobs_submitted[@]} -gt 0 ] && scancel "${jobs_submitted[@]}" 2>/dev/null
        scontrol shutdown >/dev/null 2>&1
        for _ in $(seq 30); do
            { [ -s "$T/slurmctld.pid" ] && kill -0 "$(cat "$T/slurmctld.pid")" 2>/dev/null; } ||
                { [ -s "$T/slurmd.pid" ] && kill -0 "$(cat "$T/slurmd.pid")" 2>/dev/null; } || break
            sleep 0.1
        done
    fi
    stop_pidfile "$T/slurmd.pid"
    stop_pidfile "$T/slurmctld.pid"
    stop_pidfile "$T/munged.pid"
    if [ "$failures" -gt 0 ] || [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
        for f in "$T"/*.log "$T"/work/*.out; do
            [ -f "$f" ] || continue
            echo "---- $f (last 30 lines)"
            tail -n 30 "$f"
        done
    fi
    if [ -n "${QUIRE_KEEP_TMP:-}" ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 1' TERM INT HUP # a meson timeout (SIGTERM) still stops the daemons

# ---------------------------------------------------------------- the cluster
mkdir -p "$T/etc" "$T/state" "$T/spool" "$T/munge" "$T/dev" "$T/work" "$T/ep"
chmod 700 "$T/munge" "$T/ep"
# a key of our own, so the system's munge setup (if any) is neither needed nor touched
head -c 1024 /dev/urandom > "$T/munge/munge.key"
chmod 400 "$T/munge/munge.key"
munged --force --key-file="$T/munge/munge.key" --socket="$T/munge/munge.socket" --pid-file="$T/munged.pid" \
    --log-file="$T/munged.log" --seed-file="$T/munge/munge.seed" 9>&- || skip "munged does not start here"
for _ in $(seq 50); do [ -S "$T/munge/munge.socket" ] && break; sleep 0.1; done

host=$(hostname -s)
# two free TCP ports for slurmctld and slurmd, below the ephemeral range
# (32768+, where outgoing connections take theirs) and not in any socket now
free_port() {
    local p hex
    for _ in $(seq 200); do
        p=$((10000 + RANDOM % 20000))
        hex=$(printf ':%04X ' "$p")
        grep -qs "$hex" /proc/net/tcp /proc/net/tcp6 && continue
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
        echo "$p"
        return
    done
    echo 0
}
pc=$(free_port); pd=$(free_port)
while [ "$pd" = "$pc" ]; do pd=$(free_port); done
node=$(slurmd -C 2>/dev/null | head -n1)
case "$node" in NodeName=*) ;; *) skip "slurmd -C printed no node line";; esac
ncpus=$(echo "$node" | sed -n 's/.*CPUs=\([0-9]*\).*/\1/p')

# Fake GPUs for GRES: the gpu plugin wants character devices (copies of /dev/null).
gres=""
if mknod -m 666 "$T/dev/gpu0" c 1 3 2>/dev/null && mknod -m 666 "$T/dev/gpu1" c 1 3 2>/dev/null; then
    gres=" Gres=gpu:2"
    printf 'AutoDetect=off\nNodeName=%s Name=gpu File=%s/dev/gpu[0-1]\n' "$host" "$T" > "$T/etc/gres.conf"
fi
cat > "$SLURM_CONF" <<EOF
ClusterName=quiretest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$pc
SlurmdPort=$pd
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$T/munge/munge.socket
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/slurmctld.log
SlurmdLogFile=$T/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
MailProg=/bin/true
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
MinJobAge=600
KillWait=30
${gres:+GresTypes=gpu}
$node NodeAddr=127.0.0.1$gres State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -c -f "$SLURM_CONF" 9>&- || skip "slurmctld does not start (see $T/slurmctld.log)"
slurmd -f "$SLURM_CONF" 9>&- || skip "slurmd does not start"
state=""
for _ in $(seq 200); do
    state=$(sinfo -h -o %T 2>/dev/null | head -n1)
    [ "$state" = idle ] && break
    sleep 0.1
done
[ "$state" = idle ] || { fail "node not idle (state '$state')"; exit 1; }
log "cluster up: node $host, $ncpus CPUs, ${gres:+2 fake GPUs}${gres:-no GPUs}, ports $pc/$pd"

# waits until job $1 has left the queue (at most $2 s); prints its final state
wait_job() {
    local id=$1 limit=$2 t=0
    while [ -n "$(squeue -h -j "$id" 2>/dev/null)" ]; do
        sleep 0.2
        t=$((t + 1))
        [ $t -ge $((limit * 5)) ] && { echo TIMEOUT; return 1; }
    done
    scontrol show job "$id" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -n1
}
job_exit() { scontrol show job "$1" 2>/dev/null | sed -n 's/.* ExitCode=\([0-9:]*\).*/\1/p' | head -n1; }
json_int() { sed -n "s/.*\"$2\": *\([0-9][0-9]*\).*/\1/p" "$1" | head -n1; }

# ---------------------------------------------------------------- the corpus
C=$T/corpus
mkdir -p "$C/notes"
for f in guide.md page.html records.jsonl sample.c three_pages.pdf; do
    cp "${QUIRE_FIXTURES:-$SRC/tests/fixtures}/ingest/$f" "$C/"
done
words=(partition node gpu memory batch queue scheduler account limit reservation priority array socket core
       thread license walltime preemption fairshare backfill step task signal epilog prolog quota)
x=12345
for d in $(seq -w 1 24); do
    s=""
    for w in $(seq 1 $((30 + 10#$d * 3))); do
        x=$(((x * 1103515245 + 12345) % 2147483648))
        s+="${words[$(((x >> 16) % ${#words[@]}))]}"
        if [ $((w % 9)) -eq 0 ]; then s+=". "; else s+=" "; fi
    done
    printf 'Note %s about the cluster\n\n%s\n' "$d" "$s" > "$C/notes/note$d.txt"
done
INGEST_ARGS="--chunk-tokens 64 --chunk-overlap 8"
"$QUIRE" ingest "$C" --store "$T/ref" --embedder "$EMB" $INGEST_ARGS --shard none --json > "$T/ref.json" 2>/dev/null
ref_chunks=$(json_int "$T/ref.json" chunks)
log "reference store (one plain ingest): $ref_chunks chunks"

# ---------------------------------------------------------------- array ingest -> merge
cd "$T/work"
export QUIRE CORPUS=$C STORE=$T/store EMBEDDER=$EMB INGEST_ARGS TASKS=3
small=(--chdir="$T/work" --cpus-per-task=1 --mem-per-cpu=200M)
out=$(timeout 60 "$SRC/configs/slurm/ingest.sh" "${small[@]}" ${gres:+--gres=gpu:1} 2>&1)
echo "$out"
array=$(echo "$out" | sed -n 's/.*ingest array job \([0-9]*\).*/\1/p')
merge=$(echo "$out" | sed -n 's/.*merge job \([0-9]*\) after it.*/\1/p')
[ -n "$array" ] && [ -n "$merge" ] || { fail "ingest.sh did not submit (got: $out)"; exit 1; }
jobs_submitted+=("$array" "$merge")
check "merge job depends on the array (afterok)" \
    grep -q "Dependency=afterok:${array}" <(scontrol show job "$merge")
st=$(wait_job "$merge" 90)
log "merge job $merge: $st"
check "merge job completed" [ "$st" = COMPLETED ]
for i in 0 1 2; do
    st=$(scontrol show job "${array}_$i" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -n1)
    check "array task $i completed" [ "$st" = COMPLETED ]
    f=$T/work/quire-ingest-${array}_$i.out
    check "task $i took shard $i/3 from the Slurm array variables" grep -q "shard $i/3 from the Slurm array task" "$f"
    [ -n "$gres" ] && check "task $i warns that its allocated GPU stays idle" grep -q "WILL STAY IDLE" "$f"
    check "shard store $i exists" [ -f "$T/store.shards/shard-$i/manifest.json" ]
done
"$QUIRE" info --store "$T/store" --json > "$T/info1.json" 2>"$T/info1.err"
merged_chunks=$(json_int "$T/info1.json" chunks)
log "merged store: $merged_chunks chunks (reference $ref_chunks)"
check "merged store has the reference's chunk count" eval '[ -n "$merged_chunks" ] && [ "$merged_chunks" = "$ref_chunks" ]'
"$QUIRE" search "scheduler priority reservation" --store "$T/ref" --json -k 5 --dup-threshold 2 > "$T/s_ref.json" 2>/dev/null
"$QUIRE" search "scheduler priority reservation" --store "$T/store" --json -k 5 --dup-threshold 2 > "$T/s_merged.json" 2>/dev/null
strip() { sed 's/"chunk_id": *[0-9]*//g; s/"doc_id": *[0-9]*//g; s/"store": *"[^"]*"//g; s/"seconds": *[0-9.e-]*//g' "$1"; }
# Two search answers alike: ids, store and timings aside, every other field equal, raw scores
# within 1e-6. An embedding's last bits depend on the batch it was computed in (OpenBLAS's sgemm
# on AMD Zen 3 gives a row different bits for 7 or 16 rows than for 1), and the shards of the
# merged store batch their chunks differently from the plain ingest.
same_search() {
    python3 - "$1" "$2" <<'PYEOF'
import json, sys
skip = {"chunk_id", "doc_id", "store", "seconds"}
def same(a, b, at):
    if isinstance(a, dict) and isinstance(b, dict):
        ka, kb = set(a) - skip, set(b) - skip
        if ka != kb:
            sys.exit("%s: keys %s vs %s" % (at, sorted(ka), sorted(kb)))
        for k in sorted(ka):
            same(a[k], b[k], at + "." + k)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            sys.exit("%s: %d vs %d items" % (at, len(a), len(b)))
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, "%s[%d]" % (at, i))
    elif isinstance(a, float) or isinstance(b, float):
        if not (isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) <= 1e-6):
            sys.exit("%s: %r vs %r" % (at, a, b))
    elif a != b:
        sys.exit("%s: %r vs %r" % (at, a, b))
same(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), "$")
PYEOF
}
check "search on the merged store equals search on the plain store (ids aside, scores within 1e-6)" \
    same_search "$T/s_ref.json" "$T/s_merged.json"

# ---------------------------------------------------------------- a failed task re-run alone (sbatch --array=K)
# What Slurm gives a task submitted alone, and that --shard auto refuses it without a shard count
# (before QUIRE_SHARDS it ingested every file into that task's shard, and the merge then warned about
# every file twice).
probe=$(env -u QUIRE_SHARDS -u TASKS timeout 30 sbatch --parsable --array=2 "${small[@]}" \
    --output="$T/work/probe-%A_%a.out" \
    --wrap "env | grep '^SLURM_ARRAY_TASK_' | sort; exec '$QUIRE' ingest '$C' --store '$T/probe' --shard auto")
probe=${probe%%;*}
jobs_submitted+=("$probe")
st=$(wait_job "$probe" 60)
pf=$T/work/probe-${probe}_2.out
log "plain re-submitted task (sbatch --array=2, no shard count): $st; $(grep -c . "$pf" 2>/dev/null) lines"
check "sbatch --array=2 sets SLURM_ARRAY_TASK_COUNT=1, _MIN=_MAX=2" \
    eval 'grep -qx SLURM_ARRAY_TASK_COUNT=1 "$pf" && grep -qx SLURM_ARRAY_TASK_MIN=2 "$pf" && grep -qx SLURM_ARRAY_TASK_MAX=2 "$pf" && grep -qx SLURM_ARRAY_TASK_ID=2 "$pf"'
check "--shard auto refuses it, naming --shard 2/N (job $st)" \
    eval '[ "$st" = FAILED ] && grep -q -- "--shard 2/N" "$pf"'
check "... and wrote no store" [ ! -e "$T/probe/manifest.json" ]

# Task 1 "failed": its shard is gone and the merged store with it. Re-run it with the command
# ingest.sh printed, in an environment that has none of ours, then the merge it printed.
resub=$(echo "$out" | sed -n 's/^re-run failed task K: //p')
remerge=$(echo "$out" | sed -n 's/^then merge: //p')
check "ingest.sh printed the re-run and merge commands, with TASKS=3" \
    eval '[[ "$resub" == "TASKS=3 "*"--array=K "* ]] && [[ "$remerge" == "TASKS=3 "*merge.sbatch ]]'
"$QUIRE" info --store "$T/store.shards/shard-1" --json > "$T/shard1_before.json" 2>/dev/null
docs1=$(json_int "$T/shard1_before.json" docs)
chunks1=$(json_int "$T/shard1_before.json" chunks)
rm -rf "$T/store.shards/shard-1" "$T/store"
clean_env=(env -u TASKS -u QUIRE_SHARDS -u CORPUS -u STORE -u SHARDS -u EMBEDDER -u INGEST_ARGS -u QUIRE)
re=$("${clean_env[@]}" timeout 30 bash -c "${resub/--array=K /--parsable --array=1 }" 2>&1)
re=${re%%;*}
[[ "$re" =~ ^[0-9]+$ ]] || { fail "re-submission did not submit (got: $re)"; exit 1; }
jobs_submitted+=("$re")
st=$(wait_job "$re" 60)
rf=$T/work/quire-ingest-${re}_1.out
log "re-submitted task 1 (job $re): $st"
check "re-submitted task 1 completed" [ "$st" = COMPLETED ]
check "it took shard 1/3 from TASKS (QUIRE_SHARDS), not 0/1" \
    grep -q "shard 1/3 from the Slurm array task (SLURM_ARRAY_TASK_ID 1, QUIRE_SHARDS 3)" "$rf"
"$QUIRE" info --store "$T/store.shards/shard-1" --json > "$T/shard1_after.json" 2>/dev/null
check "its shard holds what task 1 ingested first ($docs1 documents, $chunks1 chunks)" eval \
    '[ -n "$docs1" ] && [ "$(json_int "$T/shard1_after.json" docs)" = "$docs1" ] && [ "$(json_int "$T/shard1_after.json" chunks)" = "$chunks1" ]'
rm_=$("${clean_env[@]}" timeout 30 bash -c "${remerge/ sbatch / sbatch --parsable }" 2>&1)
rm_=${rm_%%;*}
[[ "$rm_" =~ ^[0-9]+$ ]] || { fail "merge re-submission did not submit (got: $rm_)"; exit 1; }
jobs_submitted+=("$rm_")
st=$(wait_job "$rm_" 90)
mf=$T/work/quire-merge-$rm_.out
log "merge after the re-run (job $rm_): $st"
check "merge after the re-run completed" [ "$st" = COMPLETED ]
check "... without a duplicate document (no 'is in ... keeping the latter')" eval '! grep -q "keeping the latter" "$mf"'
"$QUIRE" info --store "$T/store" --json > "$T/info_re.json" 2>/dev/null
check "the re-merged store has the reference's chunk count" [ "$(json_int "$T/info_re.json" chunks)" = "$ref_chunks" ]
"$QUIRE" search "scheduler priority reservation" --store "$T/store" --json -k 5 --dup-threshold 2 > "$T/s_re.json" 2>/dev/null
check "search on the re-merged store equals the plain store's" same_search "$T/s_ref.json" "$T/s_re.json"

# merge.sbatch (run as a plain script: no Slurm needed) merges exactly shard-0..TASKS-1
"${clean_env[@]}" STORE="$T/m4" SHARDS="$T/store.shards" TASKS=4 QUIRE="$QUIRE" \
    bash "$SRC/configs/slurm/merge.sbatch" > "$T/m4.out" 2>&1
mrc=$?
check "merge.sbatch refuses TASKS=4 with shard-3 missing" eval '[ $mrc -ne 0 ] && grep -q "shard-3 missing" "$T/m4.out" && [ ! -e "$T/m4" ]'
"${clean_env[@]}" STORE="$T/m2" SHARDS="$T/store.shards" TASKS=2 QUIRE="$QUIRE" \
    bash "$SRC/configs/slurm/merge.sbatch" > "$T/m2.out" 2>&1
mrc=$?
check "merge.sbatch refuses TASKS=2 with a stray shard-2" eval '[ $mrc -ne 0 ] && grep -q "shard-2 is not one of shard-0..shard-1" "$T/m2.out" && [ ! -e "$T/m2" ]'
"${clean_env[@]}" STORE="$T/m0" SHARDS="$T/store.shards" QUIRE="$QUIRE" \
    bash "$SRC/configs/slurm/merge.sbatch" > "$T/m0.out" 2>&1
mrc=$?
check "merge.sbatch refuses to run without TASKS" eval '[ $mrc -ne 0 ] && grep -q "set TASKS" "$T/m0.out" && [ ! -e "$T/m0" ]'

# ---------------------------------------------------------------- one-off ask job
ask=$(QUESTION="How do I install quire from source?" ANSWER=$T/work/answer.json \
    sbatch --parsable "${small[@]}" "$SRC/configs/slurm/ask.sbatch")
ask=${ask%%;*}
jobs_submitted+=("$ask")

if [ "$HAVE_SERVE" = 0 ]; then
    st=$(wait_job "$ask" 60)
    check "ask job completed" [ "$st" = COMPLETED ]
    check "ask job wrote an extractive answer" grep -q '"mode": *"extractive"' "$T/work/answer.json"
    echo "NOTE: quire serve is not in this build: the serve/wait/scancel part did not run"
    [ "$failures" -eq 0 ] || exit 1
    exit 0
fi

# ---------------------------------------------------------------- serve job -> wait -> queries -> scancel
serve=$(STORE=$T/store ENDPOINT_DIR=$T/ep LISTEN=127.0.0.1:0 SERVE_ARGS="--grace 5" \
    sbatch --parsable "${small[@]}" --mem-per-cpu=400M ${gres:+--gres=gpu:2} "$SRC/configs/slurm/serve.sbatch")
serve=${serve%%;*}
jobs_submitted+=("$serve")
EP=$T/ep/endpoint-$serve.json
url=$("$QUIRE" wait "$EP" --timeout 60 2>"$T/wait.err")
wrc=$?
log "quire wait: exit $wrc, url '$url'"
check "quire wait returned the server's URL" eval '[ "$wrc" -eq 0 ] && [ -n "$url" ]'
token_file=$(sed -n 's/.*"token_file" *: *"\([^"]*\)".*/\1/p' "$EP")
check "endpoint file names the token file, which is mode 0600" \
    eval '[ -n "$token_file" ] && [ "$(stat -c %a "$token_file" 2>/dev/null)" = 600 ]'
check "endpoint file does not hold the token" bash -c '! grep -qF "$(head -n1 "$1")" "$2"' _ "$token_file" "$EP"
auth=(-H "Authorization: Bearer $(head -n1 "$token_file" 2>/dev/null)")
code=$(curl -s --max-time 20 -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -d '{"query": "gpu"}' "$url/v1/search")
check "search without the token is refused with 401 (got $code)" [ "$code" = 401 ]
curl -sS --max-time 30 --fail-with-body "${auth[@]}" -H 'Content-Type: application/json' \
    -d '{"query": "scheduler priority reservation", "k": 5}' "$url/v1/search" > "$T/http_search.json"
check "POST /v1/search answers" [ $? -eq 0 ]
first_cli=$(grep -o '"path": *"[^"]*"' "$T/s_merged.json" | head -n1)
first_http=$(grep -o '"path": *"[^"]*"' "$T/http_search.json" | head -n1)
check "the server's best passage is the CLI's ($first_http)" eval '[ -n "$first_http" ] && [ "$first_http" = "$first_cli" ]'
curl -sS --max-time 30 --fail-with-body "${auth[@]}" -H 'Content-Type: application/json' \
    -d '{"question": "How do I install quire from source?", "k": 4}' "$url/v1/ask" > "$T/http_ask.json"
check "POST /v1/ask answers extractively with citations" \
    eval 'grep -q "\"mode\": *\"extractive\"" "$T/http_ask.json" && grep -q "\"citations\"" "$T/http_ask.json"'
TIMEOUT=30 timeout 60 "$SRC/configs/slurm/client.sh" "$EP" "Which note mentions the scheduler?" > "$T/client.out" 2>&1
check "client.sh (quire wait + curl) gets passages and an answer" \
    eval 'grep -q "\"results\"" "$T/client.out" && grep -q "\"answer\"" "$T/client.out"'

st=$(wait_job "$ask" 60)
check "ask job completed" [ "$st" = COMPLETED ]
check "ask job wrote an extractive answer file" grep -q '"mode": *"extractive"' "$T/work/answer.json"

scancel "$serve"
st=$(wait_job "$serve" 45)
log "serve job $serve after scancel: $st"
slog=$T/work/quire-serve-$serve.out
check "serve job has left the queue" [ "$st" != TIMEOUT ]
check "quire serve got SIGTERM and drained" grep -q "SIGTERM" "$slog"
check "quire serve stopped after draining" grep -q "serve: stopped" "$slog"
ec=$(job_exit "$serve")
check "the serve job's exit code is 0 (got $ec; quire's own status, the script execs it)" [ "$ec" = "0:0" ]
check "endpoint file removed" [ ! -e "$EP" ]
code=$(curl -s --max-time 20 -o /dev/null -w '%{http_code}' "$url/health")
check "nothing listens at the old URL any more (got $code)" [ "$code" = 000 ]

"$QUIRE" info --store "$T/store" --json > "$T/info2.json" 2>/dev/null
check "store intact after the server stopped: same chunk count" [ "$(json_int "$T/info2.json" chunks)" = "$ref_chunks" ]
"$QUIRE" search "scheduler priority reservation" --store "$T/store" --json -k 5 --dup-threshold 2 > "$T/s_after.json" 2>/dev/null
check "store intact: search gives the same results" diff <(strip "$T/s_merged.json") <(strip "$T/s_after.json")

log "done: $failures failure(s)"
[ "$failures" -eq 0 ]
