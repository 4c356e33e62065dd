#!/bin/bash
# quire: submit an array ingest and the merge that depends on it.
#
#   CORPUS=/project/docs STORE=/scratch/$USER/store [EMBEDDER=/models/m] [TASKS=8] \
#       configs/slurm/ingest.sh [more sbatch options, e.g. --partition=gpu --account=abc]
#
# Prints the two job ids, and the commands that re-run one failed task and the
# merge. The merge job starts only when every array task has succeeded
# (--dependency=afterok). If one fails, Slurm cancels the merge
# (--kill-on-invalid-dep=yes) instead of leaving it pending forever: re-run the
# failed task K with the printed command (sbatch --array=K with TASKS set: a
# task submitted alone no longer knows the array's size; the files it already
# committed are skipped as unchanged), then the merge.
#
# TASKS, the number of shards, is exported to both jobs as TASKS and
# QUIRE_SHARDS: task K ingests shard K of TASKS (`quire ingest --shard auto`
# reads QUIRE_SHARDS), and the merge checks that shard-0..shard-(TASKS-1) exist.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${CORPUS:?set CORPUS}" "${STORE:?set STORE}"
export TASKS=${TASKS:-4}
case "$TASKS" in '' | *[!0-9]* | 0*) echo "ingest.sh: TASKS=$TASKS: expected a number of tasks >= 1" >&2; exit 2;; esac
export QUIRE_SHARDS=$TASKS
array=$(sbatch --parsable --array=0-$((TASKS - 1)) "$@" "$here/ingest-array.sbatch")
array=${array%%;*} # --parsable prints "jobid[;cluster]"
merge=$(sbatch --parsable --dependency=afterok:"$array" --kill-on-invalid-dep=yes "$@" "$here/merge.sbatch")
merge=${merge%%;*}
echo "ingest array job $array (tasks 0-$((TASKS - 1))), merge job $merge after it"
# The environment a re-submission needs, quoted for the shell (sbatch passes it on).
env_line="TASKS=$TASKS"
for v in CORPUS STORE SHARDS EMBEDDER INGEST_ARGS QUIRE; do
    [ -n "${!v:-}" ] && env_line+=" $v=$(printf '%q' "${!v}")"
done
extra=""
[ $# -gt 0 ] && extra=" $(printf '%q ' "$@")" && extra=${extra% }
echo "re-run failed task K: $env_line sbatch --array=K$extra $(printf '%q' "$here/ingest-array.sbatch")"
echo "then merge: $env_line sbatch$extra $(printf '%q' "$here/merge.sbatch")"
