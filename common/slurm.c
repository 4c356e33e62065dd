/* Slurm allocation: GPUs given against GPUs used, and the array task's shard
 * (see common/slurm.h). The only reader of SLURM_* variables (and of
 * QUIRE_SHARDS, the job templates' shard count). */
#include "common/slurm.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"

/* Parses a whole non-negative decimal number; false when s is not one. */
static bool parse_nonneg(const char *s, size_t len, long *out)
{
    if (len == 0 || len > 9)
        return false;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

int qr_slurm_count_list(const char *s)
{
    if (!s)
        return -1;
    long total = 0;
    const char *p = s;
    if (!*p)
        return 0;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *dash = memchr(p, '-', len);
        long a, b;
        if (dash) {
            if (!parse_nonneg(p, (size_t)(dash - p), &a) || !parse_nonneg(dash + 1, len - (size_t)(dash - p) - 1, &b) ||
                b < a)
                return -1;
            total += b - a + 1;
        } else {
            if (!parse_nonneg(p, len, &a))
                return -1;
            total += 1;
        }
        if (total > QR_SLURM_MAX_GPUS * 1024)
            return -1;
        if (!end)
            break;
        p = end + 1;
    }
    return (int)total;
}

int qr_slurm_count_gpus_spec(const char *s)
{
    if (!s || !*s)
        return -1;
    long total = 0;
    const char *p = s;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        /* "[type:]count": the count follows the last ':' */
        const char *num = p;
        for (size_t i = 0; i < len; i++)
            if (p[i] == ':')
                num = p + i + 1;
        long v;
        if (!parse_nonneg(num, len - (size_t)(num - p), &v))
            return -1;
        total += v;
        if (total > QR_SLURM_MAX_GPUS * 1024)
            return -1;
        if (!end)
            break;
        p = end + 1;
    }
    return (int)total;
}

int qr_slurm_count_visible(const char *s)
{
    if (!s || !*s || strcmp(s, "NoDevFiles") == 0)
        return 0;
    int n = 0;
    const char *p = s;
    for (;;) {
        while (*p == ' ')
            p++;
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && p[len - 1] == ' ')
            len--;
        long v;
        /* an index, or a UUID ("GPU-...", "MIG-..."); anything else (a
         * negative index, an empty entry) ends the list as it does for CUDA */
        bool ok = parse_nonneg(p, len, &v) || (len > 4 && (strncmp(p, "GPU-", 4) == 0 || strncmp(p, "MIG-", 4) == 0));
        if (!ok)
            break;
        n++;
        if (!end)
            break;
        p = end + 1;
    }
    return n;
}

static void copy_env(const char *name, char *buf, size_t len, bool *set)
{
    const char *v = getenv(name);
    if (set)
        *set = v != NULL;
    snprintf(buf, len, "%s", v ? v : "");
}

static bool env_long(const char *name, long *out)
{
    const char *v = getenv(name);
    if (!v)
        return false;
    if (!parse_nonneg(v, strlen(v), out)) {
        QR_DEBUG("slurm: %s=\"%s\" is not a non-negative number; ignored", name, v);
        return false;
    }
    return true;
}

void qr_slurm_env_read(qr_slurm_env *out)
{
    qr_slurm_env e;
    memset(&e, 0, sizeof e);
    copy_env("SLURM_JOB_ID", e.job_id, sizeof e.job_id, &e.in_job);
    copy_env("CUDA_VISIBLE_DEVICES", e.cvd, sizeof e.cvd, &e.cvd_set);
    e.n_visible = e.cvd_set ? qr_slurm_count_visible(getenv("CUDA_VISIBLE_DEVICES")) : 0;

    bool set;
    copy_env("SLURM_STEP_GPUS", e.step_gpus, sizeof e.step_gpus, &set);
    e.n_step_gpus = set ? qr_slurm_count_list(getenv("SLURM_STEP_GPUS")) : -1;
    copy_env("SLURM_JOB_GPUS", e.job_gpus, sizeof e.job_gpus, &set);
    e.n_job_gpus = set ? qr_slurm_count_list(getenv("SLURM_JOB_GPUS")) : -1;
    copy_env("SLURM_GPUS", e.gpus, sizeof e.gpus, &set);
    e.n_gpus = set ? qr_slurm_count_gpus_spec(getenv("SLURM_GPUS")) : -1;
    long v;
    e.gpus_on_node = env_long("SLURM_GPUS_ON_NODE", &v) && v <= QR_SLURM_MAX_GPUS * 1024 ? (int)v : -1;
    if ((e.step_gpus[0] && e.n_step_gpus < 0) || (e.job_gpus[0] && e.n_job_gpus < 0) || (e.gpus[0] && e.n_gpus < 0))
        QR_DEBUG("slurm: a GPU list variable is malformed; read as absent");

    e.array_count = e.array_max = -1;
    e.array_step = 1;
    if (env_long("SLURM_ARRAY_TASK_ID", &e.array_id)) {
        e.in_array = true;
        long step;
        if (!env_long("SLURM_ARRAY_TASK_COUNT", &e.array_count))
            e.array_count = -1;
        if (!env_long("SLURM_ARRAY_TASK_MIN", &e.array_min))
            e.array_min = 0;
        if (!env_long("SLURM_ARRAY_TASK_MAX", &e.array_max))
            e.array_max = -1;
        if (env_long("SLURM_ARRAY_TASK_STEP", &step) && step > 0)
            e.array_step = step;
    }
    copy_env("QUIRE_SHARDS", e.shards_raw, sizeof e.shards_raw, &e.shards_set);
    if (e.shards_set && !*e.shards_raw)
        e.shards_set = false; /* an empty variable counts as unset, as for the options */
    const char *sv = getenv("QUIRE_SHARDS");
    e.shards_ok = e.shards_set && parse_nonneg(sv, strlen(sv), &e.shards) && e.shards >= 1 && e.shards <= 1000000;
    *out = e;
}

int qr_slurm_gpus_allocated(const qr_slurm_env *e, const char **source)
{
    const char *src = "";
    int n = 0;
    if (e->n_step_gpus >= 0) {
        n = e->n_step_gpus;
        src = "SLURM_STEP_GPUS";
    } else if (e->n_job_gpus >= 0) {
        n = e->n_job_gpus;
        src = "SLURM_JOB_GPUS";
    } else if (e->gpus_on_node >= 0) {
        n = e->gpus_on_node;
        src = "SLURM_GPUS_ON_NODE";
    } else if (e->n_gpus >= 0) {
        n = e->n_gpus;
        src = "SLURM_GPUS";
    } else if (e->cvd_set) {
        n = e->n_visible;
        src = "CUDA_VISIBLE_DEVICES";
    }
    if (source)
        *source = src;
    return n;
}

/* Appends printf-style text to buf at *pos, never past len. */
static void add(char *buf, size_t len, size_t *pos, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void add(char *buf, size_t len, size_t *pos, const char *fmt, ...)
{
    if (*pos >= len)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *pos, len - *pos, fmt, ap);
    va_end(ap);
    if (n > 0)
        *pos = *pos + (size_t)n < len ? *pos + (size_t)n : len - 1;
}

int qr_slurm_gpu_report(const qr_slurm_env *e, const qr_gpu_info *used, int n_used, char *buf, size_t len)
{
    size_t pos = 0;
    if (len)
        buf[0] = '\0';
    const char *src;
    int alloc = qr_slurm_gpus_allocated(e, &src);
    if (n_used < 0)
        n_used = 0;
    if (e->in_job)
        add(buf, len, &pos, "slurm job %s: ", e->job_id);
    add(buf, len, &pos, "allocation gives %d GPU%s", alloc, alloc == 1 ? "" : "s");
    /* every variable that was set, so a user can see what Slurm said */
    const char *sep = " (";
    if (e->cvd_set) {
        add(buf, len, &pos, "%sCUDA_VISIBLE_DEVICES=%s", sep, e->cvd);
        sep = ", ";
    }
    if (e->n_step_gpus >= 0) {
        add(buf, len, &pos, "%sSLURM_STEP_GPUS=%s", sep, e->step_gpus);
        sep = ", ";
    }
    if (e->n_job_gpus >= 0) {
        add(buf, len, &pos, "%sSLURM_JOB_GPUS=%s", sep, e->job_gpus);
        sep = ", ";
    }
    if (e->gpus_on_node >= 0) {
        add(buf, len, &pos, "%sSLURM_GPUS_ON_NODE=%d", sep, e->gpus_on_node);
        sep = ", ";
    }
    if (e->n_gpus >= 0) {
        add(buf, len, &pos, "%sSLURM_GPUS=%s", sep, e->gpus);
        sep = ", ";
    }
    if (strcmp(sep, ", ") == 0)
        add(buf, len, &pos, ")");
    if (n_used == 0) {
        add(buf, len, &pos, "; quire uses no GPU (CPU backend)");
    } else {
        add(buf, len, &pos, "; quire uses %d:", n_used);
        for (int i = 0; i < n_used && used; i++)
            add(buf, len, &pos, "%s GPU %d %s (%.1f GiB, %.1f GiB free)", i ? "," : "", used[i].index,
                used[i].name[0] ? used[i].name : "?", (double)used[i].total_bytes / (1024.0 * 1024 * 1024),
                (double)used[i].free_bytes / (1024.0 * 1024 * 1024));
    }
    int idle = alloc > n_used ? alloc - n_used : 0;
    if (idle > 0) {
        add(buf, len, &pos, "; %d allocated GPU%s WILL STAY IDLE", idle, idle == 1 ? "" : "s");
        if (e->cvd_set && e->n_visible < alloc)
            add(buf, len, &pos, " (CUDA_VISIBLE_DEVICES shows only %d of them)", e->n_visible);
        add(buf, len, &pos,
            n_used == 0 ? ": use --device cuda (a CUDA build), or request no GPU (drop --gres=gpu / --gpus)"
                        : ": use --tp %d (tensor parallelism over them), or request only %d GPU%s",
            alloc, n_used, n_used == 1 ? "" : "s");
        add(buf, len, &pos, "; sites may cancel jobs whose GPUs sit idle");
    }
    return idle;
}

int qr_slurm_log_gpus(const qr_gpu_info *used, int n_used)
{
    qr_slurm_env e;
    qr_slurm_env_read(&e);
    char line[1024];
    int idle = qr_slurm_gpu_report(&e, used, n_used, line, sizeof line);
    if (idle > 0 && e.in_job)
        QR_WARN("%s", line);
    else if (e.in_job || e.cvd_set)
        QR_INFO("%s", line);
    return idle;
}

int qr_slurm_parse_shard(const char *s, int *index, int *count)
{
    const char *slash = s ? strchr(s, '/') : NULL;
    long i, n;
    if (!slash || !parse_nonneg(s, (size_t)(slash - s), &i) || !parse_nonneg(slash + 1, strlen(slash + 1), &n) ||
        n < 1 || n > 1000000 || i >= n)
        return qr_fail(QR_EINVAL, "shard \"%s\": expected I/N with 0 <= I < N (e.g. 0/4)", s ? s : "");
    *index = (int)i;
    *count = (int)n;
    return 0;
}

int qr_slurm_array_shard(const qr_slurm_env *e, int *index, int *count)
{
    if (e->shards_set) {
        /* the job template says how many shards the ingest has: the task id is the shard */
        if (!e->shards_ok)
            return qr_fail(QR_EINVAL, "QUIRE_SHARDS=\"%s\": expected the total number of shards, 1..1000000",
                           e->shards_raw);
        if (!e->in_array)
            return qr_fail(QR_EINVAL,
                           "QUIRE_SHARDS=%ld is set but this is not a Slurm array task (no SLURM_ARRAY_TASK_ID): "
                           "pass --shard I/%ld, or --shard none to ingest every file",
                           e->shards, e->shards);
        if (e->array_id >= e->shards)
            return qr_fail(QR_EINVAL,
                           "slurm array task %ld is not a shard of QUIRE_SHARDS=%ld (the task id is the shard "
                           "index, 0..%ld): submit --array=0-%ld, or pass --shard I/N",
                           e->array_id, e->shards, e->shards - 1, e->shards - 1);
        *index = (int)e->array_id;
        *count = (int)e->shards;
        return 1;
    }
    if (!e->in_array)
        return 0;
    if (e->array_count < 0)
        return qr_fail(QR_EINVAL,
                       "slurm array task %ld without SLURM_ARRAY_TASK_COUNT: --shard auto cannot tell the number "
                       "of shards; pass --shard I/N (or export QUIRE_SHARDS=N)",
                       e->array_id);
    if (e->array_count == 1)
        /* sbatch --array=K, the way a failed task is re-run, gives exactly this: the
         * original array's size is gone, and 0/1 would take every file */
        return qr_fail(QR_EINVAL,
                       "slurm array task %ld is the only task of its array (SLURM_ARRAY_TASK_COUNT=1, as when a "
                       "failed task is re-submitted with sbatch --array=%ld): --shard auto cannot tell how many "
                       "shards the ingest has and would put every file into this one; pass --shard %ld/N with N "
                       "the number of tasks of the whole ingest (or export QUIRE_SHARDS=N; configs/slurm/ does), "
                       "or --shard none for all files",
                       e->array_id, e->array_id, e->array_id);
    if (e->array_count > 1000000 || e->array_id < e->array_min ||
        (e->array_max >= 0 && (e->array_id > e->array_max || e->array_max < e->array_min)))
        return qr_fail(QR_EINVAL,
                       "slurm array task %ld is outside its array (SLURM_ARRAY_TASK_MIN %ld, _MAX %ld, _COUNT %ld): "
                       "pass --shard I/N (or export QUIRE_SHARDS=N)",
                       e->array_id, e->array_min, e->array_max, e->array_count);
    if (e->array_max >= 0 && (e->array_max - e->array_min) != (e->array_count - 1) * e->array_step)
        return qr_fail(QR_EINVAL,
                       "slurm array tasks %ld..%ld by %ld are not the %ld tasks of SLURM_ARRAY_TASK_COUNT (a task "
                       "list such as --array=1,5,9, or part of an array re-submitted): --shard auto cannot tell "
                       "this task's shard; pass --shard I/N (or export QUIRE_SHARDS=N and number the tasks 0..N-1)",
                       e->array_min, e->array_max, e->array_step, e->array_count);
    long off = e->array_id - e->array_min;
    if (off % e->array_step != 0 || off / e->array_step >= e->array_count)
        return qr_fail(QR_EINVAL,
                       "slurm array task %ld (SLURM_ARRAY_TASK_MIN %ld, _STEP %ld, _COUNT %ld) does not map to a "
                       "shard 0..%ld; use a range --array=0-%ld, or pass --shard I/N",
                       e->array_id, e->array_min, e->array_step, e->array_count, e->array_count - 1,
                       e->array_count - 1);
    *index = (int)(off / e->array_step);
    *count = (int)e->array_count;
    return 1;
}

void qr_slurm_endpoint_name(const qr_slurm_env *e, char *buf, size_t len)
{
    if (e->in_job && e->job_id[0])
        snprintf(buf, len, "quire-endpoint-%s.json", e->job_id);
    else
        snprintf(buf, len, "quire-endpoint.json");
}
