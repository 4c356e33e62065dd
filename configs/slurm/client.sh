#!/bin/bash
# quire: query a running serve job (serve.sbatch) from a script, a notebook's
# shell, or another job. Usage:
#
#   configs/slurm/client.sh ENDPOINT_FILE "question"
#
# e.g. right after submitting:
#   jid=$(sbatch --parsable configs/slurm/serve.sbatch)
#   configs/slurm/client.sh ~/.quire/endpoint-$jid.json "How do I request a GPU?"
#
# `quire wait` replaces `sleep 10`: it blocks until the endpoint file exists
# (the job may still be queued) and the server answers GET /ready, then prints
# the URL; it exits 1 after --timeout seconds. The token is read from the token
# file the endpoint file names (never passed on a command line that `ps` shows:
# curl reads the header from stdin).
set -euo pipefail
QUIRE=${QUIRE:-quire}
ep=${1:?usage: client.sh ENDPOINT_FILE QUESTION}
question=${2:?usage: client.sh ENDPOINT_FILE QUESTION}

url=$("$QUIRE" wait "$ep" --timeout "${TIMEOUT:-600}")
token_file=$(sed -n 's/.*"token_file" *: *"\([^"]*\)".*/\1/p' "$ep")
# JSON-escape the question (backslashes and quotes; control characters dropped).
q=$(printf '%s' "$question" | tr -d '\000-\037' | sed 's/\\/\\\\/g; s/"/\\"/g')

post() { # post ROUTE BODY: prints the response body; fails on HTTP errors
    if [ -n "$token_file" ]; then
        printf 'Authorization: Bearer %s\n' "$(head -n1 "$token_file")" |
            curl -sS --fail-with-body -H @- -H 'Content-Type: application/json' -d "$2" "$url$1"
    else
        curl -sS --fail-with-body -H 'Content-Type: application/json' -d "$2" "$url$1"
    fi
}

echo "== passages"
post /v1/search "{\"query\": \"$q\", \"k\": 5}"
echo
echo "== answer"
post /v1/ask "{\"question\": \"$q\", \"k\": 5}"
echo
