#!/bin/bash
# quire: submit an array ingest and the merge that depends on it.
#
#   CORPUS=/project/docs STORE=/scratch/$USER/store [EMBEDDER=/models/m] [TASKS=8] \
#       configs/slurm/ingest.sh [more sbatch options, e.g. --partition=gpu --account=abc]
#
# Prints the two job ids. The merge job starts only when every array task has
# succeeded (--dependency=afterok). If one fails, Slurm cancels the merge
# (--kill-on-invalid-dep=yes) instead of leaving it pending forever: resubmit
# the failed task (sbatch --array=K configs/slurm/ingest-array.sbatch; the files
# it already committed are skipped as unchanged), then merge.sbatch.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${CORPUS:?set CORPUS}" "${STORE:?set STORE}"
export TASKS=${TASKS:-4}
array=$(sbatch --parsable --array=0-$((TASKS - 1)) "$@" "$here/ingest-array.sbatch")
array=${array%%;*} # --parsable prints "jobid[;cluster]"
merge=$(sbatch --parsable --dependency=afterok:"$array" --kill-on-invalid-dep=yes "$@" "$here/merge.sbatch")
merge=${merge%%;*}
echo "ingest array job $array (tasks 0-$((TASKS - 1))), merge job $merge after it"
