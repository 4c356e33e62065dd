/* What a Slurm allocation gives quire: the GPUs it may use and the share of an
 * array job's work this task owns. This is the only module that reads SLURM_*
 * environment variables (and CUDA_VISIBLE_DEVICES for the same report).
 *
 * Why it matters: Slurm accounts requested GPUs whether or not they compute,
 * and sites cancel jobs whose GPUs sit idle. quire therefore says at start-up
 * what the allocation holds against what it will use, and warns loudly when
 * some allocated GPUs would stay idle (2 allocated, 1 used; GPUs allocated but
 * the CPU backend chosen).
 *
 * Variables read (as Slurm 22.05+ sets them; see the sbatch/srun man pages):
 *   CUDA_VISIBLE_DEVICES   devices this process can open: "0,1", UUIDs, ""
 *                          or "NoDevFiles" (none); CUDA stops at the first
 *                          invalid entry, and so does the count here
 *   SLURM_STEP_GPUS        GPU indices of the current step on this node ("0,1", ranges "0-3")
 *   SLURM_JOB_GPUS         GPU indices of the job on this node (batch script)
 *   SLURM_GPUS_ON_NODE     count of GPUs allocated on this node
 *   SLURM_GPUS             --gpus value: "[type:]count[,...]" (whole job, maybe several nodes)
 *   SLURM_JOB_ID           set inside any Slurm job
 *   SLURM_ARRAY_TASK_ID / _COUNT / _MIN / _MAX / _STEP   array task position
 *   QUIRE_SHARDS           the total number of shards of an array ingest, set by
 *                          the job templates (configs/slurm/ingest.sh): the
 *                          task id is then the shard index. Slurm's own
 *                          variables describe the array the task was submitted
 *                          in, not the ingest: a failed task re-submitted alone
 *                          (sbatch --array=K) sees SLURM_ARRAY_TASK_COUNT=1 and
 *                          SLURM_ARRAY_TASK_MIN = _MAX = K. */
#ifndef QR_COMMON_SLURM_H
#define QR_COMMON_SLURM_H

#include <stdbool.h>
#include <stddef.h>

#include "runtime/backend.h"

#define QR_SLURM_MAX_GPUS 64

typedef struct qr_slurm_env {
    bool in_job;                  /* SLURM_JOB_ID set */
    char job_id[32];              /* "" outside Slurm */
    /* CUDA_VISIBLE_DEVICES */
    bool cvd_set;
    char cvd[256];                /* the raw value (truncated for display) */
    int n_visible;                /* devices CUDA will show: entries up to the first invalid one */
    /* Slurm's GPU variables; -1 when the variable is absent */
    int n_step_gpus, n_job_gpus, gpus_on_node, n_gpus;
    char step_gpus[128], job_gpus[128], gpus[64]; /* raw values for the log */
    /* the array task, when SLURM_ARRAY_TASK_ID is set; array_count and
     * array_max are -1 when their variables are absent, array_min 0 and
     * array_step 1 */
    bool in_array;
    long array_id, array_min, array_max, array_step, array_count;
    /* QUIRE_SHARDS: shards_ok when it is a number 1..1000000 (shards) */
    bool shards_set, shards_ok;
    long shards;
    char shards_raw[32];
} qr_slurm_env;

/* Reads the variables above from the environment into *out (always succeeds;
 * malformed values count as absent and are logged at debug level). */
void qr_slurm_env_read(qr_slurm_env *out);

/* GPUs the allocation gives this process on this node: SLURM_STEP_GPUS, else
 * SLURM_JOB_GPUS, else SLURM_GPUS_ON_NODE, else SLURM_GPUS, else (outside a
 * Slurm GPU allocation) the CUDA_VISIBLE_DEVICES count; 0 when none says
 * anything. *source (may be NULL) names the variable it came from, "" if none. */
int qr_slurm_gpus_allocated(const qr_slurm_env *e, const char **source);

/* Counts the entries of a GPU list: "0,1,3" -> 3, "0-3,6" -> 5, "" -> 0;
 * -1 when malformed. Exposed for tests. */
int qr_slurm_count_list(const char *s);
/* Sums the counts of a --gpus value: "2" -> 2, "a100:2" -> 2, "a100:2,v100:1"
 * -> 3; -1 when malformed. */
int qr_slurm_count_gpus_spec(const char *s);
/* Devices CUDA exposes for a CUDA_VISIBLE_DEVICES value (entries before the
 * first invalid one; "NoDevFiles" and "" give 0). */
int qr_slurm_count_visible(const char *s);

/* The start-up report as text (one line, no newline) into buf: what the
 * allocation gives and what quire uses (used: the GPUs quire computes on,
 * n_used of them; 0 = CPU backend). Returns the number of allocated GPUs
 * that would stay idle (0: none). */
int qr_slurm_gpu_report(const qr_slurm_env *e, const qr_gpu_info *used, int n_used, char *buf, size_t len);

/* Reads the environment and logs the report: a warning when allocated GPUs
 * would stay idle inside a Slurm job, else info inside a job or when
 * CUDA_VISIBLE_DEVICES is set, nothing otherwise. Returns the idle count. */
int qr_slurm_log_gpus(const qr_gpu_info *used, int n_used);

/* This array task's shard (--shard auto): *index in [0, *count). Returns 1
 * when the environment names one, 0 outside an array task without
 * QUIRE_SHARDS (outputs untouched: ingest every file), QR_EINVAL with the
 * reason and the fix (--shard I/N) in qr_last_error() when it cannot be
 * read safely. With QUIRE_SHARDS=N the shard is ID/N (ID < N, else refused).
 * Without it the array is taken to be the whole ingest: index = (ID - MIN) /
 * STEP, count = COUNT, and refused are
 *   - COUNT 1: a re-submitted task (sbatch --array=K) looks like this, and
 *     reading it as shard 0/1 would put every file into that task's store;
 *   - ID outside [MIN, MAX], or not MIN + a multiple of STEP below COUNT;
 *   - MIN..MAX by STEP not holding COUNT tasks (a list like --array=1,5,9,
 *     or part of the array re-submitted as a list);
 *   - SLURM_ARRAY_TASK_ID without SLURM_ARRAY_TASK_COUNT. */
int qr_slurm_array_shard(const qr_slurm_env *e, int *index, int *count);

/* Parses "I/N" (0 <= I < N <= 1000000). 0 or QR_EINVAL. */
int qr_slurm_parse_shard(const char *s, int *index, int *count);

/* Default endpoint file name for quire serve: "quire-endpoint-$SLURM_JOB_ID.json",
 * or "quire-endpoint.json" outside Slurm, into buf. */
void qr_slurm_endpoint_name(const qr_slurm_env *e, char *buf, size_t len);

#endif
