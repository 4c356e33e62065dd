/* common/slurm: parsing of the GPU and array variables Slurm sets (values as
 * the sbatch/srun man pages and ../shared/notes/slurm-ci.md describe them),
 * the idle-GPU warning and the array task's shard. */
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/slurm.h"
#include "tests/unit/test.h"

static const char *const vars[] = {"SLURM_JOB_ID", "CUDA_VISIBLE_DEVICES", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS",
                                   "SLURM_GPUS_ON_NODE", "SLURM_GPUS", "SLURM_ARRAY_TASK_ID",
                                   "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX",
                                   "SLURM_ARRAY_TASK_STEP", "QUIRE_SHARDS"};

static void clear_env(void)
{
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
}

int main(void)
{
    /* list parsing */
    CHECK_INT(qr_slurm_count_list("0,1"), 2);
    CHECK_INT(qr_slurm_count_list("0-3,6"), 5);
    CHECK_INT(qr_slurm_count_list("7"), 1);
    CHECK_INT(qr_slurm_count_list(""), 0);
    CHECK_INT(qr_slurm_count_list("0,,1"), -1);
    CHECK_INT(qr_slurm_count_list("3-1"), -1);
    CHECK_INT(qr_slurm_count_list("a,b"), -1);
    CHECK_INT(qr_slurm_count_gpus_spec("2"), 2);
    CHECK_INT(qr_slurm_count_gpus_spec("a100:2"), 2);
    CHECK_INT(qr_slurm_count_gpus_spec("a100:2,v100:1"), 3);
    CHECK_INT(qr_slurm_count_gpus_spec("a100"), -1);
    CHECK_INT(qr_slurm_count_visible("0,1"), 2);
    CHECK_INT(qr_slurm_count_visible("NoDevFiles"), 0);
    CHECK_INT(qr_slurm_count_visible(""), 0);
    CHECK_INT(qr_slurm_count_visible("1,-1,0"), 1); /* CUDA stops at the first invalid entry */
    CHECK_INT(qr_slurm_count_visible("GPU-5b1c8c1e-aaaa-bbbb-cccc-0123456789ab,MIG-0f3a"), 2);

    /* outside Slurm: nothing allocated, nothing to warn about */
    clear_env();
    qr_slurm_env e;
    qr_slurm_env_read(&e);
    CHECK(!e.in_job);
    CHECK(!e.in_array);
    const char *src = NULL;
    CHECK_INT(qr_slurm_gpus_allocated(&e, &src), 0);
    CHECK(strcmp(src, "") == 0);
    char line[1024];
    CHECK_INT(qr_slurm_gpu_report(&e, NULL, 0, line, sizeof line), 0);
    CHECK_INT(qr_slurm_log_gpus(NULL, 0), 0);
    char name[64];
    qr_slurm_endpoint_name(&e, name, sizeof name);
    CHECK(strcmp(name, "quire-endpoint.json") == 0);

    /* a batch job with --gres=gpu:2 (what the notes saw): CPU backend -> 2 idle */
    setenv("SLURM_JOB_ID", "4711", 1);
    setenv("CUDA_VISIBLE_DEVICES", "0,1", 1);
    setenv("SLURM_JOB_GPUS", "0,1", 1);
    setenv("SLURM_GPUS_ON_NODE", "2", 1);
    qr_slurm_env_read(&e);
    CHECK(e.in_job);
    CHECK(strcmp(e.job_id, "4711") == 0);
    CHECK_INT(e.n_visible, 2);
    CHECK_INT(e.n_job_gpus, 2);
    CHECK_INT(e.n_step_gpus, -1);
    CHECK_INT(e.gpus_on_node, 2);
    CHECK_INT(e.n_gpus, -1);
    CHECK_INT(qr_slurm_gpus_allocated(&e, &src), 2);
    CHECK(strcmp(src, "SLURM_JOB_GPUS") == 0);
    int idle = qr_slurm_gpu_report(&e, NULL, 0, line, sizeof line);
    CHECK_INT(idle, 2);
    CHECK_MSG(strstr(line, "slurm job 4711") && strstr(line, "allocation gives 2 GPUs") &&
                  strstr(line, "CUDA_VISIBLE_DEVICES=0,1") && strstr(line, "SLURM_GPUS_ON_NODE=2") &&
                  strstr(line, "CPU backend") && strstr(line, "2 allocated GPUs WILL STAY IDLE"),
              "%s", line);
    CHECK_INT(qr_slurm_log_gpus(NULL, 0), 2); /* the warning on stderr */
    qr_slurm_endpoint_name(&e, name, sizeof name);
    CHECK(strcmp(name, "quire-endpoint-4711.json") == 0);

    /* one of two used: 1 idle; both used: none */
    qr_gpu_info g[2];
    memset(g, 0, sizeof g);
    g[0].index = 0;
    strcpy(g[0].name, "NVIDIA H100");
    g[0].total_bytes = 80ull << 30;
    g[0].free_bytes = 79ull << 30;
    g[1] = g[0];
    g[1].index = 1;
    idle = qr_slurm_gpu_report(&e, g, 1, line, sizeof line);
    CHECK_INT(idle, 1);
    CHECK_MSG(strstr(line, "quire uses 1: GPU 0 NVIDIA H100 (80.0 GiB, 79.0 GiB free)") &&
                  strstr(line, "1 allocated GPU WILL STAY IDLE") && strstr(line, "use --tp 2"),
              "%s", line);
    /* tensor parallelism over both: every GPU in use is listed, none idle */
    CHECK_INT(qr_slurm_gpu_report(&e, g, 2, line, sizeof line), 0);
    CHECK_MSG(!strstr(line, "IDLE") && strstr(line, "quire uses 2: GPU 0 NVIDIA H100") && strstr(line, ", GPU 1 NVIDIA H100"),
              "%s", line);

    /* an srun step inside it: SLURM_STEP_GPUS wins over the job's list */
    setenv("SLURM_STEP_GPUS", "1", 1);
    setenv("CUDA_VISIBLE_DEVICES", "0", 1);
    qr_slurm_env_read(&e);
    CHECK_INT(qr_slurm_gpus_allocated(&e, &src), 1);
    CHECK(strcmp(src, "SLURM_STEP_GPUS") == 0);

    /* only --gpus=a100:3 known; a user narrowing CUDA_VISIBLE_DEVICES to one */
    unsetenv("SLURM_STEP_GPUS");
    unsetenv("SLURM_JOB_GPUS");
    unsetenv("SLURM_GPUS_ON_NODE");
    setenv("SLURM_GPUS", "a100:3", 1);
    qr_slurm_env_read(&e);
    CHECK_INT(qr_slurm_gpus_allocated(&e, &src), 3);
    CHECK(strcmp(src, "SLURM_GPUS") == 0);
    idle = qr_slurm_gpu_report(&e, g, 1, line, sizeof line);
    CHECK_INT(idle, 2);
    CHECK_MSG(strstr(line, "CUDA_VISIBLE_DEVICES shows only 1 of them"), "%s", line);

    /* malformed values read as absent; NoDevFiles means none */
    setenv("SLURM_GPUS", "lots", 1);
    setenv("CUDA_VISIBLE_DEVICES", "NoDevFiles", 1);
    qr_slurm_env_read(&e);
    CHECK_INT(e.n_gpus, -1);
    CHECK_INT(qr_slurm_gpus_allocated(&e, &src), 0);
    CHECK(strcmp(src, "CUDA_VISIBLE_DEVICES") == 0);

    /* array tasks: --array=0-2 (COUNT 3, MIN 0) */
    clear_env();
    int i = -1, n = -1;
    qr_slurm_env_read(&e);
    CHECK_INT(qr_slurm_array_shard(&e, &i, &n), 0);
    CHECK(i == -1 && n == -1);
    setenv("SLURM_ARRAY_TASK_ID", "2", 1);
    setenv("SLURM_ARRAY_TASK_COUNT", "3", 1);
    setenv("SLURM_ARRAY_TASK_MIN", "0", 1);
    qr_slurm_env_read(&e);
    CHECK_INT(qr_slurm_array_shard(&e, &i, &n), 1);
    CHECK(i == 2 && n == 3);
    /* --array=1-4: task 1 is shard 0 of 4 */
    setenv("SLURM_ARRAY_TASK_ID", "1", 1);
    setenv("SLURM_ARRAY_TASK_COUNT", "4", 1);
    setenv("SLURM_ARRAY_TASK_MIN", "1", 1);
    qr_slurm_env_read(&e);
    CHECK_INT(qr_slurm_array_shard(&e, &i, &n), 1);
    CHECK(i == 0 && n == 4);
    /* --array=0-10:5 (tasks 0, 5, 10): task 10 is shard 2 of 3 */
    setenv("SLURM_ARRAY_TASK_ID", "10", 1);
    setenv("SLURM_ARRAY_TASK_COUNT", "3", 1);
    setenv("SLURM_ARRAY_TASK_MIN", "0", 1);
    setenv("SLURM_ARRAY_TASK_STEP", "5", 1);
    qr_slurm_env_read(&e);
    CHECK_INT(qr_slurm_array_shard(&e, &i, &n), 1);
    CHECK(i == 2 && n == 3);
    /* --array=1,5,9: no step; task 9 does not map */
    setenv("SLURM_ARRAY_TASK_ID", "9", 1);
    setenv("SLURM_ARRAY_TASK_MIN", "1", 1);
    unsetenv("SLURM_ARRAY_TASK_STEP");
    qr_slurm_env_read(&e);
    CHECK_INT(qr_slurm_array_shard(&e, &i, &n), QR_EINVAL);
    CHECK(strstr(qr_last_error(), "--shard I/N") != NULL);
    /* the same list as Slurm describes it, MAX included (MIN 1, MAX 9, COUNT 3,
     * STEP 1): 1..9 by 1 is not 3 tasks, so even task 1 is refused */
    setenv("SLURM_ARRAY_TASK_ID", "1", 1);
    setenv("SLURM_ARRAY_TASK_MAX", "9", 1);
    setenv("SLURM_ARRAY_TASK_STEP", "1", 1);
    qr_slurm_env_read(&e);
    CHECK_INT(e.array_max, 9);
    CHECK_INT(qr_slurm_array_shard(&e, &i, &n), QR_EINVAL);
    CHECK_MSG(strstr(qr_last_error(), "--shard I/N") && strstr(qr_last_error(), "--array=1,5,9"), "%s",
              qr_last_error());
    clear_env();

    /* A failed task re-run the way the templates say, sbatch --array=5 (of an
     * 8-task ingest): Slurm 22.05 sets exactly these (tests/slurm/run.sh sees
     * them). Read as 0/1 it would ingest the whole corpus into shard-5. */
    i = n = -1;
    setenv("SLURM_JOB_ID", "4712", 1);
    setenv("SLURM_ARRAY_TASK_ID", "5", 1);
    setenv("SLURM_ARRAY_TASK_COUNT", "1", 1);
    setenv("SLURM_ARRAY_TASK_MIN", "5", 1);
    setenv("SLURM_ARRAY_TASK_MAX", "5", 1);
    setenv("SLURM_ARRAY_TASK_STEP", "1", 1);
    qr_slurm_env_read(&e);
    CHECK(e.in_array);
    CHECK(!e.shards_set);
    CHECK_INT(qr_slurm_array_shard(&e, &i, &n), QR_EINVAL);
    CHECK(i == -1 && n == -1);
    CHECK_MSG(strstr(qr_last_error(), "SLURM_ARRAY_TASK_COUNT=1") && strstr(qr_last_error(), "--shard 5/N") &&
                  strstr(qr_last_error(), "QUIRE_SHARDS=N"),
              "%s", qr_last_error());
    /* task 0 re-submitted alone (--array=0) is refused too: 0/1 is every file */
    setenv("SLURM_ARRAY_TASK_ID", "0", 1);
    setenv("SLURM_ARRAY_TASK_MIN", "0", 1);
    setenv("SLURM_ARRAY_TASK_MAX", "0", 1);
    qr_slurm_env_read(&e);
    CHECK_INT(qr_slurm_array_shard(&e, &i, &n), QR_EINVAL);
    CHECK(strstr(qr_last_error(), "--shard 0/N") != NULL);
    /* with the templates' QUIRE_SHARDS=8 the re-submitted task 5 is shard 5/8 again */
    setenv("SLURM_ARRAY_TASK_ID", "5", 1);
    setenv("SLURM_ARRAY_TASK_MIN", "5", 1);
    setenv("SLURM_ARRAY_TASK_MAX", "5", 1);
    setenv("QUIRE_SHARDS", "8", 1);
    qr_slurm_env_read(&e);
    CHECK(e.shards_set && e.shards_ok && e.shards == 8);
    CHECK_INT(qr_slurm_array_shard(&e, &i, &n), 1);
    CHECK(i == 5 && n == 8);
    /* ... and the whole array's task 7 (--array=0-7) is shard 7/8, as without QUIRE_SHARDS */
    setenv("SLURM_ARRAY_TASK_ID", "7", 1);
    setenv("SLURM_ARRAY_TASK_COUNT", "8", 1);
    setenv("SLURM_ARRAY_TASK_MIN", "0", 1);
    setenv("SLURM_ARRAY_TASK_MAX", "7", 1);
    qr_slurm_env_read(&e);
    CHECK_INT(qr_slurm_array_shard(&e, &i, &n), 1);
    CHECK(i == 7 && n == 8);
    unsetenv("QUIRE_SHARDS");
    qr_slurm_env_read(&e);
    CHECK_INT(qr_slurm_array_shard(&e, &i, &n), 1);
    CHECK(i == 7 && n == 8);
    /* a task id past QUIRE_SHARDS (re-submitted --array=8 of 8 shards, or an array numbered from 1) */
    setenv("SLURM_ARRAY_TASK_ID", "8", 1);
    setenv("SLURM_ARRAY_TASK_COUNT", "1", 1);
    setenv("SLURM_ARRAY_TASK_MIN", "8", 1);
    setenv("SLURM_ARRAY_TASK_MAX", "8", 1);
    setenv("QUIRE_SHARDS", "8", 1);
    qr_slurm_env_read(&e);
    i = n = -1;
    CHECK_INT(qr_slurm_array_shard(&e, &i, &n), QR_EINVAL);
    CHECK(i == -1 && n == -1);
    CHECK_MSG(strstr(qr_last_error(), "QUIRE_SHARDS=8") && strstr(qr_last_error(), "0..7") &&
                  strstr(qr_last_error(), "--shard I/N"),
              "%s", qr_last_error());
    /* QUIRE_SHARDS that is not a count */
    setenv("QUIRE_SHARDS", "0", 1);
    qr_slurm_env_read(&e);
    CHECK(e.shards_set && !e.shards_ok);
    CHECK_INT(qr_slurm_array_shard(&e, &i, &n), QR_EINVAL);
    CHECK(strstr(qr_last_error(), "QUIRE_SHARDS=\"0\"") != NULL);
    setenv("QUIRE_SHARDS", "4x", 1);
    qr_slurm_env_read(&e);
    CHECK_INT(qr_slurm_array_shard(&e, &i, &n), QR_EINVAL);
    setenv("QUIRE_SHARDS", "", 1); /* empty: unset, as for the options; then COUNT 1 is refused */
    qr_slurm_env_read(&e);
    CHECK(!e.shards_set);
    CHECK_INT(qr_slurm_array_shard(&e, &i, &n), QR_EINVAL);
    CHECK(strstr(qr_last_error(), "SLURM_ARRAY_TASK_COUNT=1") != NULL);
    /* QUIRE_SHARDS outside an array task: no index to take */
    clear_env();
    setenv("QUIRE_SHARDS", "4", 1);
    qr_slurm_env_read(&e);
    CHECK(!e.in_array);
    CHECK_INT(qr_slurm_array_shard(&e, &i, &n), QR_EINVAL);
    CHECK(strstr(qr_last_error(), "--shard I/4") != NULL);
    clear_env();

    /* ids outside [MIN, MAX], an inconsistent array, a task id without COUNT */
    setenv("SLURM_ARRAY_TASK_ID", "2", 1); /* below MIN */
    setenv("SLURM_ARRAY_TASK_COUNT", "3", 1);
    setenv("SLURM_ARRAY_TASK_MIN", "3", 1);
    setenv("SLURM_ARRAY_TASK_MAX", "5", 1);
    qr_slurm_env_read(&e);
    CHECK_INT(qr_slurm_array_shard(&e, &i, &n), QR_EINVAL);
    CHECK(strstr(qr_last_error(), "outside its array") != NULL);
    setenv("SLURM_ARRAY_TASK_ID", "6", 1); /* above MAX */
    qr_slurm_env_read(&e);
    CHECK_INT(qr_slurm_array_shard(&e, &i, &n), QR_EINVAL);
    CHECK(strstr(qr_last_error(), "outside its array") != NULL);
    setenv("SLURM_ARRAY_TASK_ID", "4", 1); /* inside: --array=3-5, task 4 is shard 1/3 */
    qr_slurm_env_read(&e);
    CHECK_INT(qr_slurm_array_shard(&e, &i, &n), 1);
    CHECK(i == 1 && n == 3);
    setenv("SLURM_ARRAY_TASK_MAX", "2", 1); /* MAX below MIN */
    qr_slurm_env_read(&e);
    CHECK_INT(qr_slurm_array_shard(&e, &i, &n), QR_EINVAL);
    clear_env();
    setenv("SLURM_ARRAY_TASK_ID", "1", 1);
    qr_slurm_env_read(&e);
    CHECK(e.in_array);
    CHECK_INT(e.array_count, -1);
    CHECK_INT(qr_slurm_array_shard(&e, &i, &n), QR_EINVAL);
    CHECK(strstr(qr_last_error(), "without SLURM_ARRAY_TASK_COUNT") != NULL);
    clear_env();

    /* --shard I/N */
    CHECK_OK(qr_slurm_parse_shard("0/1", &i, &n));
    CHECK(i == 0 && n == 1);
    CHECK_OK(qr_slurm_parse_shard("2/3", &i, &n));
    CHECK(i == 2 && n == 3);
    CHECK_INT(qr_slurm_parse_shard("3/3", &i, &n), QR_EINVAL);
    CHECK_INT(qr_slurm_parse_shard("1/0", &i, &n), QR_EINVAL);
    CHECK_INT(qr_slurm_parse_shard("-1/3", &i, &n), QR_EINVAL);
    CHECK_INT(qr_slurm_parse_shard("1", &i, &n), QR_EINVAL);
    CHECK_INT(qr_slurm_parse_shard("a/b", &i, &n), QR_EINVAL);
    return qr_test_done();
}
