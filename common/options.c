/* The option table and its three sources (file, environment, flags).
 * See options.h for the rules; configs/quire.conf is rendered from this table
 * (quire config --dump-default) and a test checks the two agree. */
#include "common/options.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/error.h"
#include "common/log.h"
#include "common/slurm.h"

extern char **environ;

/* ---- string checks ---- */

/* auto | cpu | cuda | cuda:N (N a device index 0..255). */
/* "auto", "none" or I/N with 0 <= I < N (common/slurm.h). */
static int check_shard(const char *v, char *why, size_t why_len)
{
    int i, n;
    if (!strcmp(v, "auto") || !strcmp(v, "none") || qr_slurm_parse_shard(v, &i, &n) == 0) {
        qr_clear_error();
        return 0;
    }
    qr_clear_error();
    snprintf(why, why_len, "expected auto, none or I/N with 0 <= I < N (e.g. 2/4)");
    return -1;
}

/* auto | N (1..64): tensor-parallel ranks. */
static int check_tp(const char *v, char *why, size_t why_len)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (!strcmp(v, "auto") || (*v && !*end && !errno && isdigit((unsigned char)v[0]) && n >= 1 && n <= 64))
        return 0;
    snprintf(why, why_len, "expected auto or a rank count 1..64");
    return -1;
}

static int check_device(const char *v, char *why, size_t why_len)
{
    if (!strcmp(v, "auto") || !strcmp(v, "cpu") || !strcmp(v, "cuda"))
        return 0;
    if (!strncmp(v, "cuda:", 5) && v[5]) {
        char *end;
        errno = 0;
        long n = strtol(v + 5, &end, 10);
        if (!*end && !errno && n >= 0 && n <= 255 && isdigit((unsigned char)v[5]))
            return 0;
    }
    snprintf(why, why_len, "expected auto, cpu, cuda or cuda:N (N = 0..255)");
    return -1;
}

/* ---- the table ---- */

#define BIG_INT 9007199254740991.0 /* 2^53 - 1: exact in a double bound */

static const qr_option_def table[QR_OPT_COUNT] = {
    [QR_OPT_MODEL] = {"model", QR_OPT_STRING, "model", "", 0, 0, NULL,
        "language model: a directory, a .gguf file, a Hugging Face id ORG/NAME from the HF cache, "
        "or ollama:NAME[:TAG]", 0, NULL},
    [QR_OPT_EMBEDDER] = {"embedder", QR_OPT_STRING, "model", "", 0, 0, NULL,
        "embedding model (same forms as model); used by embed when --model is not given", 0, NULL},
    [QR_OPT_DTYPE] = {"dtype", QR_OPT_ENUM, "model", "f32", 0, 0, "f32|bf16|f16|int8|q8_0|q4_k|as-stored",
        "weight precision for matmuls and the token embeddings (int8 = per-output-channel symmetric, q8_0/q4_k = "
        "GGUF blocks, all three quantized at load; as-stored = each tensor kept in its file's type, GGUF blocks "
        "included, where the backend computes with it, else converted saying so); norms and biases stay f32",
        0, NULL},
    [QR_OPT_KV_DTYPE] = {"kv-dtype", QR_OPT_ENUM, "model", "f32", 0, 0, "f32|bf16|f16",
        "KV cache element type used by estimate (the CPU runtime keeps its KV cache in f32)", 0, NULL},
    [QR_OPT_DEVICE] = {"device", QR_OPT_STRING, "runtime", "auto", 0, 0, NULL,
        "compute device: auto (the first usable GPU, else the CPU, saying why), cpu, cuda or cuda:N", 0, check_device},
    [QR_OPT_THREADS] = {"threads", QR_OPT_INT, "runtime", "0", 0, 1024, NULL,
        "CPU worker threads (0 = all online cores)", 0, NULL},
    [QR_OPT_TP] = {"tp", QR_OPT_STRING, "runtime", "1", 0, 0, NULL,
        "tensor parallelism: N ranks (heads, FFN and vocabulary split N ways; one per GPU) for the LLM of "
        "generate, ask and serve and the per-GPU figures of estimate, or auto (the most GPUs visible to the job "
        "that the model splits over; 1 on the CPU); --device cpu runs N in-process ranks; formerly --gpus",
        0, check_tp},
    [QR_OPT_CTX] = {"ctx", QR_OPT_INT, "runtime", "4096", 1, 1048576, NULL,
        "context length in tokens: prompt + completion limit of generate, KV cache size of estimate", 0, NULL},
    [QR_OPT_BATCH] = {"batch", QR_OPT_INT, "runtime", "1", 1, 4096, NULL,
        "sequences processed together (embed batch size; concurrent sequences in estimate)", 0, NULL},
    [QR_OPT_LOG_LEVEL] = {"log-level", QR_OPT_ENUM, "runtime", "info", 0, 0, "error|warn|info|debug",
        "stderr verbosity (info shows the model load line with its precision)", 0, NULL},
    [QR_OPT_MAX_TOKENS] = {"max-tokens", QR_OPT_INT, "generate", "256", 1, 65536, NULL,
        "most tokens generate produces", 0, NULL},
    [QR_OPT_TEMPERATURE] = {"temperature", QR_OPT_FLOAT, "generate", "0.8", 0, 100, NULL,
        "sampling temperature (0 = greedy, deterministic)", 0, NULL},
    [QR_OPT_TOP_K] = {"top-k", QR_OPT_INT, "generate", "40", 0, 1000000, NULL,
        "sample only from the k most likely tokens (0 = off)", 0, NULL},
    [QR_OPT_TOP_P] = {"top-p", QR_OPT_FLOAT, "generate", "0.95", 0, 1, NULL,
        "nucleus sampling: smallest set of tokens with this total probability (1 = off)", 0, NULL},
    [QR_OPT_MIN_P] = {"min-p", QR_OPT_FLOAT, "generate", "0.05", 0, 1, NULL,
        "drop tokens less likely than min-p times the most likely one (0 = off)", 0, NULL},
    [QR_OPT_REPEAT_PENALTY] = {"repeat-penalty", QR_OPT_FLOAT, "generate", "1", 0.01, 100, NULL,
        "repetition penalty, Hugging Face semantics (1 = off)", 0, NULL},
    [QR_OPT_REPEAT_LAST_N] = {"repeat-last-n", QR_OPT_INT, "generate", "64", 0, 1048576, NULL,
        "tokens the repetition penalty looks back over (0 = whole context)", 0, NULL},
    [QR_OPT_SEED] = {"seed", QR_OPT_INT, "generate", "0", 0, BIG_INT, NULL,
        "random seed for sampling", 0, NULL},
    [QR_OPT_STOP] = {"stop", QR_OPT_STRING, "generate", "", 0, 0, NULL,
        "stop string, not included in the output (repeat the option for several)", QR_OPTF_REPEAT, NULL},
    [QR_OPT_MAX_LINE_BYTES] = {"max-line-bytes", QR_OPT_INT, "limits", "1048576", 1, 268435456, NULL,
        "longest stdin line (--jsonl) or whole stdin text accepted by tokenize and embed, in bytes", 0, NULL},
    [QR_OPT_MAX_LINES] = {"max-lines", QR_OPT_INT, "limits", "1000000", 1, 100000000, NULL,
        "most stdin lines accepted by tokenize and embed --jsonl", 0, NULL},
    [QR_OPT_HEADROOM] = {"headroom", QR_OPT_FLOAT, "estimate", "10", 0, 90, NULL,
        "percent of each GPU's memory kept free (CUDA context, fragmentation) when estimate says a model fits",
        0, NULL},
    [QR_OPT_PROMPT] = {"prompt", QR_OPT_STRING, "command", "", 0, 0, NULL,
        "prompt text", QR_OPTF_CLI, NULL},
    [QR_OPT_JSONL] = {"jsonl", QR_OPT_BOOL, "command", "false", 0, 0, NULL,
        "stdin: one JSON string per line; stdout: one JSON array per line", QR_OPTF_CLI, NULL},
    [QR_OPT_ADD_SPECIAL] = {"add-special", QR_OPT_BOOL, "command", "false", 0, 0, NULL,
        "add the tokenizer's special tokens (BOS, [CLS] .. [SEP])", QR_OPTF_CLI, NULL},
    [QR_OPT_IDS] = {"ids", QR_OPT_BOOL, "command", "false", 0, 0, NULL,
        "print the generated ids as a JSON array on the last line", QR_OPTF_CLI, NULL},
    [QR_OPT_JSON] = {"json", QR_OPT_BOOL, "command", "false", 0, 0, NULL,
        "print the result as one JSON object", QR_OPTF_CLI, NULL},
    [QR_OPT_HELP] = {"help", QR_OPT_BOOL, "command", "false", 0, 0, NULL,
        "show this help", QR_OPTF_CLI, NULL},
    [QR_OPT_DUMP_DEFAULT] = {"dump-default", QR_OPT_BOOL, "command", "false", 0, 0, NULL,
        "print configs/quire.conf (every option with its default) instead of the effective values",
        QR_OPTF_CLI, NULL},
    /* search helper */
    [QR_OPT_K] = {"k", QR_OPT_INT, "search", "5", 1, 1000, NULL,
        "passages search returns (-k N)", 0, NULL},
    [QR_OPT_RERANKER] = {"reranker", QR_OPT_STRING, "search", "", 0, 0, NULL,
        "cross-encoder (BERT sequence classification) that reranks the fused candidates; empty = none", 0, NULL},
    [QR_OPT_RRF_K] = {"rrf-k", QR_OPT_FLOAT, "search", "60", 0, 1000000, NULL,
        "reciprocal rank fusion constant: score = sum of weight / (rrf-k + rank)", 0, NULL},
    [QR_OPT_WEIGHT_DENSE] = {"weight-dense", QR_OPT_FLOAT, "search", "1", 0, 1000000, NULL,
        "RRF weight of dense (embedding) retrieval (0 = off)", 0, NULL},
    [QR_OPT_WEIGHT_BM25] = {"weight-lexical", QR_OPT_FLOAT, "search", "1", 0, 1000000, NULL,
        "RRF weight of lexical (BM25) retrieval (0 = off)", 0, NULL},
    [QR_OPT_MMR_LAMBDA] = {"mmr-lambda", QR_OPT_FLOAT, "search", "0.7", 0, 1, NULL,
        "MMR trade-off: relevance weight against similarity to passages already chosen (1 = no MMR)", 0, NULL},
    [QR_OPT_DUP_THRESHOLD] = {"dup-threshold", QR_OPT_FLOAT, "search", "0.95", 0, 2, NULL,
        "similarity (cosine, or term Jaccard without vectors) at which a passage is a near-duplicate and dropped (> 1 = off)",
        0, NULL},
    [QR_OPT_MAX_PER_DOC] = {"max-per-doc", QR_OPT_INT, "search", "1", 0, 1000, NULL,
        "passages one document may contribute to a result list, so one long page cannot fill it (0 = no cap; "
        "eval retrieval turns it off)", 0, NULL},
    [QR_OPT_RERANK_DEPTH] = {"rerank-depth", QR_OPT_INT, "search", "50", 0, 10000, NULL,
        "fused candidates the reranker scores", 0, NULL},
    [QR_OPT_FILTER] = {"filter", QR_OPT_STRING, "command", "", 0, 0, NULL,
        "search filter path=GLOB or metadata key=value (repeat for several; all must match)",
        QR_OPTF_CLI | QR_OPTF_REPEAT, NULL},
    /* ingest helper */
    [QR_OPT_STORE] = {"store", QR_OPT_STRING, "store", "", 0, 0, NULL,
        "store directory (manifest.json, meta.lmdb, vectors.faiss); created by the first ingest", 0, NULL},
    [QR_OPT_CHUNK_TOKENS] = {"chunk-tokens", QR_OPT_INT, "ingest", "256", 16, 8192, NULL,
        "tokens per chunk, special tokens included (fixed when a store is created)", 0, NULL},
    [QR_OPT_CHUNK_OVERLAP] = {"chunk-overlap", QR_OPT_INT, "ingest", "32", 0, 4096, NULL,
        "tokens shared by consecutive chunks, at most chunk-tokens / 2 (fixed when a store is created)", 0,
        NULL},
    [QR_OPT_FAISS_INDEX] = {"faiss-index", QR_OPT_STRING, "store", "Flat", 0, 0, NULL,
        "FAISS factory string of the vector index: Flat (exact), HNSW32, IVF1024,PQ32 (IVF is trained on a "
        "sample of up to 65,536 vectors); a new store takes it, an existing one changes to it only when it is "
        "given as a flag or in the environment/file (vectors.faiss is then rebuilt from meta.lmdb)", 0, NULL},
    [QR_OPT_JOBS] = {"jobs", QR_OPT_INT, "ingest", "4", 1, 256, NULL,
        "reader threads (read and chunk files in parallel)", 0, NULL},
    [QR_OPT_MAX_FILE_BYTES] = {"max-file-bytes", QR_OPT_INT, "ingest", "268435456", 1, BIG_INT, NULL,
        "files larger than this are skipped (reason too-large)", 0, NULL},
    [QR_OPT_HIDDEN] = {"hidden", QR_OPT_BOOL, "ingest", "false", 0, 0, NULL,
        "also ingest hidden files and directories (names starting with '.') inside walked directories", 0,
        NULL},
    [QR_OPT_PRUNE] = {"prune", QR_OPT_BOOL, "command", "false", 0, 0, NULL,
        "ingest: remove documents whose files no longer exist under the PATHs given (no PATH: anywhere in "
        "the store)", QR_OPTF_CLI, NULL},
    /* a command-line switch: a config file or environment that always forces would undo the safeguard */
    [QR_OPT_FORCE] = {"force", QR_OPT_BOOL, "command", "false", 0, 0, NULL,
        "ingest: --prune even when it would remove more than half of the store's documents", QR_OPTF_CLI, NULL},
    /* slurm helper */
    /* a command-line switch: a config file or QUIRE_SHARD applying to every ingest would be a trap, and
     * the Slurm array variables already give each task its shard */
    [QR_OPT_SHARD] = {"shard", QR_OPT_STRING, "command", "auto", 0, 0, NULL,
        "ingest: only shard I/N of the files (by a hash of each file's path below its PATH); auto: the Slurm "
        "array task's (SLURM_ARRAY_TASK_ID of QUIRE_SHARDS, else of SLURM_ARRAY_TASK_COUNT; a task re-run alone "
        "is refused without QUIRE_SHARDS), else all; none: all files", QR_OPTF_CLI, check_shard},
    /* pipe3 helper: quire eval retrieval switches; BM25 parameters [search] */
    [QR_OPT_BEIR] = {"beir", QR_OPT_STRING, "command", "", 0, 0, NULL,
        "eval retrieval: BEIR dataset directory (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv)", QR_OPTF_CLI, NULL},
    [QR_OPT_SPLIT] = {"split", QR_OPT_STRING, "command", "test", 0, 0, NULL,
        "eval retrieval: qrels split, the file qrels/SPLIT.tsv", QR_OPTF_CLI, NULL},
    [QR_OPT_BM25_K1] = {"lexical-saturation", QR_OPT_FLOAT, "search", "0.9", 0, 1000, NULL,
        "BM25 k1, term frequency saturation (search, ask, eval retrieval; Lucene/Anserini default 0.9)", 0, NULL},
    [QR_OPT_BM25_B] = {"lexical-length-norm", QR_OPT_FLOAT, "search", "0.4", 0, 1, NULL,
        "BM25 b, document length normalisation (search, ask, eval retrieval; default 0.4)", 0, NULL},
    [QR_OPT_HITS] = {"hits", QR_OPT_INT, "command", "1000", 1, 1000000, NULL,
        "eval retrieval: hits per query (at most 1000 when evaluating through a store)", QR_OPTF_CLI, NULL},
    /* embed helper */
    [QR_OPT_PROTOCOL] = {"protocol", QR_OPT_ENUM, "command", "store", 0, 0, "store|mteb",
        "eval retrieval with --embedder: store = the corpus ingested as chunks and searched by quire search's "
        "retriever (dense + BM25, RRF); mteb = MTEB's dense protocol (one vector per document, title + \" \" + "
        "text truncated at the model's max_seq_length, exact cosine search over all documents)", QR_OPTF_CLI, NULL},
    /* serve helper */
    [QR_OPT_LISTEN] = {"listen", QR_OPT_STRING, "serve", "127.0.0.1:0", 0, 0, NULL,
        "HOST:PORT the HTTP server listens on ([v6addr]:PORT for IPv6; port 0 = any free port, written to the "
        "endpoint file); a non-loopback HOST needs a token file (one is created when none is given)", 0, NULL},
    [QR_OPT_TOKEN_FILE] = {"token-file", QR_OPT_STRING, "serve", "", 0, 0, NULL,
        "file whose first line is the bearer token every route but /health requires (empty = no auth on "
        "loopback)", 0, NULL},
    [QR_OPT_ENDPOINT_FILE] = {"endpoint-file", QR_OPT_STRING, "serve", "", 0, 0, NULL,
        "where serve writes {host, port, url, token_file, pid} once ready (empty = quire-endpoint-$SLURM_JOB_ID"
        ".json in a Slurm job, else quire-endpoint.json)", 0, NULL},
    [QR_OPT_SLOTS] = {"slots", QR_OPT_INT, "serve", "8", 1, 256, NULL,
        "generations decoded together by the scheduler (KV cache slots)", 0, NULL},
    [QR_OPT_QUEUE] = {"queue", QR_OPT_INT, "serve", "64", 0, 100000, NULL,
        "generations waiting for a slot; one more gets 503 with Retry-After", 0, NULL},
    [QR_OPT_MAX_INFLIGHT] = {"max-inflight", QR_OPT_INT, "serve", "64", 1, 100000, NULL,
        "requests other than generations (search, embeddings, extractive ask, documents) served at once; "
        "one more gets 503 with Retry-After", 0, NULL},
    [QR_OPT_GRACE] = {"grace", QR_OPT_INT, "serve", "20", 0, 3600, NULL,
        "seconds in-flight requests get to finish after SIGTERM/SIGINT before they are cancelled", 0, NULL},
    [QR_OPT_MAX_BODY_BYTES] = {"max-body-bytes", QR_OPT_INT, "serve", "4194304", 64, 1073741824, NULL,
        "largest request body (HTTP 413 above)", 0, NULL},
    [QR_OPT_MAX_JSON_DEPTH] = {"max-json-depth", QR_OPT_INT, "serve", "32", 2, 1000, NULL,
        "deepest nesting of arrays and objects in a request body", 0, NULL},
    [QR_OPT_MAX_STRING_BYTES] = {"max-string-bytes", QR_OPT_INT, "serve", "1048576", 16, 1073741824, NULL,
        "longest string in a request body (questions and queries are also held to 65536 bytes)", 0, NULL},
    [QR_OPT_MAX_K] = {"max-k", QR_OPT_INT, "serve", "100", 1, 1000, NULL,
        "largest k a search or ask request may ask for", 0, NULL},
    [QR_OPT_MAX_GEN_TOKENS] = {"max-gen-tokens", QR_OPT_INT, "serve", "4096", 1, 1048576, NULL,
        "largest max_tokens a generation request may ask for", 0, NULL},
    [QR_OPT_MAX_INPUTS] = {"max-inputs", QR_OPT_INT, "serve", "256", 1, 100000, NULL,
        "most strings in one /v1/embeddings input array", 0, NULL},
    [QR_OPT_MAX_MESSAGES] = {"max-messages", QR_OPT_INT, "serve", "256", 1, 100000, NULL,
        "most messages in one /v1/chat/completions request", 0, NULL},
    [QR_OPT_TIMEOUT] = {"timeout", QR_OPT_FLOAT, "command", "60", 0, 1e9, NULL,
        "wait: seconds to wait for the endpoint file and /ready before giving up", QR_OPTF_CLI, NULL},
    [QR_OPT_IDLE_TIMEOUT] = {"idle-timeout", QR_OPT_INT, "serve", "60", 1, 86400, NULL,
        "seconds a connection may stay silent (slow or stalled clients are closed)", 0, NULL},
    /* cudaa helper: CUDA backend */
    [QR_OPT_ACT_DTYPE] = {"act-dtype", QR_OPT_ENUM, "runtime", "f32", 0, 0, "f32|bf16",
        "activation and KV-cache type on a GPU: f32 (as the CPU backend) or bf16 (half the memory traffic, "
        "about 3 significant digits); the CPU backend always computes in f32", 0, NULL},
    /* ingestmsg helper: ingest progress off a terminal */
    [QR_OPT_PROGRESS_INTERVAL] = {"progress-interval", QR_OPT_FLOAT, "ingest", "5", 0, 86400, NULL,
        "seconds between ingest's progress lines (files, chunks, rate, ETA at info level; 0 = after every "
        "batch) when stderr is not a terminal (batch jobs) or with --json; a terminal gets a redrawn bar", 0, NULL},
    /* formats helper: command-line switches (a config file that always excludes would surprise) */
    [QR_OPT_INCLUDE] = {"include", QR_OPT_STRING, "command", "", 0, 0, NULL,
        "ingest: read only files whose path below PATH (or, for a pattern without '/', whose name) matches "
        "this glob; repeat for several (ingest/filter.h)", QR_OPTF_REPEAT | QR_OPTF_CLI, NULL},
    [QR_OPT_EXCLUDE] = {"exclude", QR_OPT_STRING, "command", "", 0, 0, NULL,
        "ingest: skip files and directories matching this glob (as --include); repeat for several",
        QR_OPTF_REPEAT | QR_OPTF_CLI, NULL},
    [QR_OPT_DEFAULT_EXCLUDES] = {"default-excludes", QR_OPT_BOOL, "command", "true", 0, 0, NULL,
        "ingest: skip .git, node_modules, __pycache__, virtual environments, *.min.js, *.css and lock files "
        "(--no-default-excludes reads them)", QR_OPTF_CLI, NULL},
};

const qr_option_def *qr_option_def_at(int id)
{
    return id >= 0 && id < QR_OPT_COUNT ? &table[id] : NULL;
}

int qr_option_find(const char *name)
{
    /* deprecated names still accepted (flag, config key, QUIRE_ variable) */
    if (!strcmp(name, "gpus")) {
        static bool warned;
        if (!warned)
            QR_WARN("option \"gpus\" is deprecated: it is now \"tp\" (--tp, QUIRE_TP), same meaning");
        warned = true;
        return QR_OPT_TP;
    }
    for (int i = 0; i < QR_OPT_COUNT; i++)
        if (!strcmp(table[i].name, name))
            return i;
    return -1;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return (size_t)-1;
    size_t prev[65], cur[65];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (lb + 1) * sizeof prev[0]);
    }
    return prev[lb];
}

const char *qr_option_suggest(const char *name, bool only_config)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (int i = 0; i < QR_OPT_COUNT; i++) {
        if (only_config && (table[i].flags & QR_OPTF_CLI))
            continue;
        size_t d = edit_distance(name, table[i].name);
        if (d < best_d) {
            best_d = d;
            best = table[i].name;
        }
    }
    size_t len = strlen(name);
    size_t limit = len / 3 > 2 ? len / 3 : 2;
    return best_d <= limit ? best : NULL;
}

void qr_option_env_name(const qr_option_def *d, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "QUIRE_%s", d->name);
    for (size_t i = 6; i < n && i < len; i++)
        buf[i] = buf[i] == '-' ? '_' : (char)toupper((unsigned char)buf[i]);
}

/* ---- values ---- */

typedef struct {
    qr_opt_source src;
    char origin[192];
    int64_t i;
    double f;
    bool b;
    char *s;       /* STRING / ENUM */
    char **items;  /* REPEAT */
    size_t n_items;
} opt_value;

struct qr_options {
    opt_value v[QR_OPT_COUNT];
    char **pos;
    size_t n_pos;
    char *config_path;
};

static void clear_items(opt_value *v)
{
    for (size_t k = 0; k < v->n_items; k++)
        free(v->items[k]);
    free(v->items);
    v->items = NULL;
    v->n_items = 0;
}

/* Parses text into a scratch value; on failure a qr_fail naming origin, option and bound. */
static int parse_value(const qr_option_def *d, const char *text, const char *origin, opt_value *tmp)
{
    char why[160];
    switch (d->type) {
    case QR_OPT_INT: {
        char *end;
        errno = 0;
        long long x = strtoll(text, &end, 10);
        if (!*text || *end || errno == ERANGE)
            return qr_fail(QR_EINVAL, "%s: %s: \"%s\" is not an integer", origin, d->name, text);
        if ((double)x < d->min)
            return qr_fail(QR_EINVAL, "%s: %s: %lld is below the minimum %lld", origin, d->name, x,
                           (long long)d->min);
        if ((double)x > d->max)
            return qr_fail(QR_EINVAL, "%s: %s: %lld is above the maximum %lld", origin, d->name, x,
                           (long long)d->max);
        tmp->i = x;
        return 0;
    }
    case QR_OPT_FLOAT: {
        char *end;
        errno = 0;
        double x = strtod(text, &end);
        if (!*text || *end || errno == ERANGE || !isfinite(x))
            return qr_fail(QR_EINVAL, "%s: %s: \"%s\" is not a finite number", origin, d->name, text);
        if (x < d->min)
            return qr_fail(QR_EINVAL, "%s: %s: %g is below the minimum %g", origin, d->name, x, d->min);
        if (x > d->max)
            return qr_fail(QR_EINVAL, "%s: %s: %g is above the maximum %g", origin, d->name, x, d->max);
        tmp->f = x;
        return 0;
    }
    case QR_OPT_BOOL: {
        static const char *const yes[] = {"true", "1", "yes", "on"}, *const no[] = {"false", "0", "no", "off"};
        for (int k = 0; k < 4; k++) {
            if (!strcasecmp(text, yes[k])) {
                tmp->b = true;
                return 0;
            }
            if (!strcasecmp(text, no[k])) {
                tmp->b = false;
                return 0;
            }
        }
        return qr_fail(QR_EINVAL, "%s: %s: \"%s\" is not a boolean (true/false, 1/0, yes/no, on/off)", origin,
                       d->name, text);
    }
    case QR_OPT_ENUM: {
        size_t tl = strlen(text);
        for (const char *c = d->choices; *c;) {
            const char *bar = strchr(c, '|');
            size_t cl = bar ? (size_t)(bar - c) : strlen(c);
            if (cl == tl && !strncmp(c, text, tl)) {
                tmp->s = strdup(text);
                return tmp->s ? 0 : qr_fail(QR_ENOMEM, "options: out of memory");
            }
            c += cl + (bar != NULL);
        }
        return qr_fail(QR_EINVAL, "%s: %s: \"%s\" is not one of %s", origin, d->name, text, d->choices);
    }
    case QR_OPT_STRING:
        if (d->check && *text && d->check(text, why, sizeof why))
            return qr_fail(QR_EINVAL, "%s: %s: \"%s\": %s", origin, d->name, text, why);
        tmp->s = strdup(text);
        return tmp->s ? 0 : qr_fail(QR_ENOMEM, "options: out of memory");
    }
    return qr_fail(QR_EINTERNAL, "%s: %s: bad option type", origin, d->name);
}

int qr_options_set(qr_options *o, int id, const char *value, qr_opt_source src, const char *origin)
{
    const qr_option_def *d = qr_option_def_at(id);
    if (!d)
        return qr_fail(QR_EINVAL, "%s: option id %d out of range", origin, id);
    opt_value *v = &o->v[id];
    if (src < v->src) /* a higher-precedence source already set it */
        return 0;
    opt_value tmp = {0};
    if (d->flags & QR_OPTF_REPEAT) {
        /* A higher source replaces the list; the same source appends; an
         * empty value only clears (`stop =` in a file means no stop strings). */
        if (src > v->src)
            clear_items(v);
        if (*value) {
            char **grown = realloc(v->items, (v->n_items + 1) * sizeof *grown);
            if (!grown)
                return qr_fail(QR_ENOMEM, "options: out of memory");
            v->items = grown;
            if (!(v->items[v->n_items] = strdup(value)))
                return qr_fail(QR_ENOMEM, "options: out of memory");
            v->n_items++;
        }
    } else {
        int rc = parse_value(d, value, origin, &tmp);
        if (rc)
            return rc;
        free(v->s);
        v->s = tmp.s;
        v->i = tmp.i;
        v->f = tmp.f;
        v->b = tmp.b;
    }
    v->src = src;
    snprintf(v->origin, sizeof v->origin, "%s", origin);
    return 0;
}

int qr_options_create(qr_options **out)
{
    qr_options *o = calloc(1, sizeof *o);
    if (!o)
        return qr_fail(QR_ENOMEM, "options: out of memory");
    for (int i = 0; i < QR_OPT_COUNT; i++) {
        int rc = qr_options_set(o, i, table[i].def, QR_SRC_DEFAULT, "default");
        if (rc) {
            qr_options_free(o);
            return rc;
        }
    }
    *out = o;
    return 0;
}

void qr_options_free(qr_options *o)
{
    if (!o)
        return;
    for (int i = 0; i < QR_OPT_COUNT; i++) {
        free(o->v[i].s);
        clear_items(&o->v[i]);
    }
    for (size_t k = 0; k < o->n_pos; k++)
        free(o->pos[k]);
    free(o->pos);
    free(o->config_path);
    free(o);
}

/* ---- config file ---- */

#define MAX_CONF_BYTES (1 << 20)

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\r')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

static int load_file_line(qr_options *o, const char *path, int lineno, char *line)
{
    char origin[192];
    snprintf(origin, sizeof origin, "%s:%d", path, lineno);
    char *eq = strchr(line, '=');
    if (!eq)
        return qr_fail(QR_EINVAL, "%s: expected `name = value`, got \"%.40s\"", origin, line);
    *eq = '\0';
    char *key = trim(line), *val = trim(eq + 1);
    int id = qr_option_find(key);
    if (id < 0) {
        const char *sug = qr_option_suggest(key, true);
        if (sug)
            return qr_fail(QR_EINVAL, "%s: unknown option \"%s\" (did you mean \"%s\"?)", origin, key, sug);
        return qr_fail(QR_EINVAL, "%s: unknown option \"%s\" (see configs/quire.conf for the list)", origin, key);
    }
    if (table[id].flags & QR_OPTF_CLI)
        return qr_fail(QR_EINVAL, "%s: %s is a command-line switch (--%s), not a config option", origin, key, key);
    if (*val == '"') {
        /* A JSON string: keeps spaces, '#', and escapes like \n. */
        json_error_t jerr;
        json_t *j = json_loads(val, JSON_DECODE_ANY, &jerr);
        if (!j || !json_is_string(j)) {
            json_decref(j);
            return qr_fail(QR_EINVAL, "%s: %s: bad quoted string (%s)", origin, key,
                           j ? "not a string" : jerr.text);
        }
        int rc = qr_options_set(o, id, json_string_value(j), QR_SRC_FILE, origin);
        json_decref(j);
        return rc;
    }
    return qr_options_set(o, id, val, QR_SRC_FILE, origin);
}

int qr_options_load_file(qr_options *o, const char *path)
{
    int rc = 0;
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return qr_fail(errno == ENOENT ? QR_ENOTFOUND : QR_EIO, "config file %s: %s", path, strerror(errno));
    buf = malloc(MAX_CONF_BYTES + 1);
    if (!buf) {
        rc = qr_fail(QR_ENOMEM, "config file %s: out of memory", path);
        goto fail;
    }
    size_t n = fread(buf, 1, MAX_CONF_BYTES + 1, f);
    if (ferror(f)) {
        rc = qr_fail(QR_EIO, "config file %s: read error", path);
        goto fail;
    }
    if (n > MAX_CONF_BYTES) {
        rc = qr_fail(QR_ELIMIT, "config file %s: larger than the limit of %d bytes", path, MAX_CONF_BYTES);
        goto fail;
    }
    buf[n] = '\0';
    if (memchr(buf, '\0', n)) {
        rc = qr_fail(QR_EINVAL, "config file %s: contains a NUL byte (not a text file?)", path);
        goto fail;
    }
    int lineno = 0;
    for (char *line = buf; line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        lineno++;
        char *t = trim(line);
        if (*t && *t != '#' && (rc = load_file_line(o, path, lineno, t)))
            goto fail;
        line = nl ? nl + 1 : NULL;
    }
    free(o->config_path);
    o->config_path = strdup(path);
fail:
    free(buf);
    fclose(f);
    return rc;
}

/* ---- environment ---- */

int qr_options_load_env(qr_options *o)
{
    char name[96], origin[128];
    for (int i = 0; i < QR_OPT_COUNT; i++) {
        if (table[i].flags & QR_OPTF_CLI)
            continue;
        qr_option_env_name(&table[i], name, sizeof name);
        const char *v = getenv(name);
        if (!v || !*v) /* an empty variable counts as unset */
            continue;
        snprintf(origin, sizeof origin, "environment %s", name);
        int rc = qr_options_set(o, i, v, QR_SRC_ENV, origin);
        if (rc)
            return rc;
    }
    /* the deprecated QUIRE_GPUS (now QUIRE_TP) */
    const char *g = getenv("QUIRE_GPUS");
    if (g && *g && !(getenv("QUIRE_TP") && *getenv("QUIRE_TP"))) {
        int rc = qr_options_set(o, qr_option_find("gpus"), g, QR_SRC_ENV, "environment QUIRE_GPUS");
        if (rc)
            return rc;
    }
    /* A QUIRE_ variable close to an option name is probably a typo: warn
     * (other QUIRE_ variables may belong to scripts, so they are not errors).
     * The project's own script variables are not typos: QUIRE_MODELS (the test
     * environment's model cache) and QUIRE_MODELS_DIR (tools/models.sh) are
     * one letter from QUIRE_MODEL. */
    static const char *const not_options[] = {"config", "models", "models-dir"};
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, "QUIRE_", 6))
            continue;
        const char *eq = strchr(*e, '=');
        size_t len = eq ? (size_t)(eq - *e) - 6 : strlen(*e + 6);
        if (len == 0 || len >= 64)
            continue;
        char key[64];
        for (size_t k = 0; k < len; k++)
            key[k] = (*e)[6 + k] == '_' ? '-' : (char)tolower((unsigned char)(*e)[6 + k]);
        key[len] = '\0';
        bool script_var = false;
        for (size_t k = 0; k < sizeof not_options / sizeof not_options[0]; k++)
            script_var = script_var || !strcmp(key, not_options[k]);
        if (script_var || qr_option_find(key) >= 0)
            continue;
        const char *sug = qr_option_suggest(key, true);
        if (sug) {
            qr_option_env_name(&table[qr_option_find(sug)], name, sizeof name);
            QR_WARN("environment QUIRE_%.*s is not an option (did you mean %s?); ignored", (int)len, *e + 6, name);
        }
    }
    return 0;
}

/* ---- flags ---- */

static bool is_allowed(const int *allowed, int id)
{
    if (!allowed || id == QR_OPT_HELP)
        return true;
    for (const int *a = allowed; *a >= 0; a++)
        if (*a == id)
            return true;
    return false;
}

static int add_positional(qr_options *o, const char *arg)
{
    char **grown = realloc(o->pos, (o->n_pos + 1) * sizeof *grown);
    if (!grown)
        return qr_fail(QR_ENOMEM, "options: out of memory");
    o->pos = grown;
    if (!(o->pos[o->n_pos] = strdup(arg)))
        return qr_fail(QR_ENOMEM, "options: out of memory");
    o->n_pos++;
    return 0;
}

int qr_options_parse_args(qr_options *o, int n, char **args, const int *allowed)
{
    char origin[192], name[96];
    for (int k = 0; k < n; k++) {
        const char *a = args[k];
        int rc;
        if (!strcmp(a, "--")) {
            for (k++; k < n; k++)
                if ((rc = add_positional(o, args[k])))
                    return rc;
            break;
        }
        if (!strcmp(a, "-h")) {
            qr_options_set(o, QR_OPT_HELP, "true", QR_SRC_FLAG, "flag -h");
            continue;
        }
        if (a[0] == '-' && a[1] != '-' && a[1] != '\0')
            return qr_fail(QR_EINVAL, "flag %s: unknown (quire's options are long: --name VALUE)", a);
        if (strncmp(a, "--", 2)) {
            if ((rc = add_positional(o, a)))
                return rc;
            continue;
        }
        const char *eq = strchr(a + 2, '=');
        size_t nl = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
        if (nl >= sizeof name)
            return qr_fail(QR_EINVAL, "flag %.40s...: unknown option", a);
        memcpy(name, a + 2, nl);
        name[nl] = '\0';
        snprintf(origin, sizeof origin, "flag --%s", name);
        if (!strcmp(name, "config")) { /* read by qr_options_load before the flags */
            if (!eq && ++k >= n)
                return qr_fail(QR_EINVAL, "flag --config: missing value (a file path)");
            continue;
        }
        int id = qr_option_find(name);
        const char *value = eq ? eq + 1 : NULL;
        if (id < 0 && !strncmp(name, "no-", 3) && !eq) {
            int b = qr_option_find(name + 3);
            if (b >= 0 && table[b].type == QR_OPT_BOOL) {
                id = b;
                value = "false";
            }
        }
        if (id < 0) {
            const char *sug = qr_option_suggest(name, false);
            if (sug)
                return qr_fail(QR_EINVAL, "flag --%s: unknown option (did you mean --%s?)", name, sug);
            return qr_fail(QR_EINVAL, "flag --%s: unknown option (see --help)", name);
        }
        if (!is_allowed(allowed, id))
            return qr_fail(QR_EINVAL, "flag --%s: not an option of this command (see --help)", name);
        if (!value) {
            if (table[id].type == QR_OPT_BOOL)
                value = "true";
            else if (++k < n)
                value = args[k];
            else
                return qr_fail(QR_EINVAL, "flag --%s: missing value", name);
        }
        if ((rc = qr_options_set(o, id, value, QR_SRC_FLAG, origin)))
            return rc;
    }
    return 0;
}

int qr_options_load(qr_options *o, int n, char **args, const int *allowed)
{
    const char *path = NULL, *how = NULL;
    for (int k = 0; k < n; k++) {
        if (!strcmp(args[k], "--"))
            break;
        if (!strcmp(args[k], "--config")) {
            if (k + 1 >= n)
                return qr_fail(QR_EINVAL, "flag --config: missing value (a file path)");
            path = args[++k];
            how = "--config";
        } else if (!strncmp(args[k], "--config=", 9)) {
            path = args[k] + 9;
            how = "--config";
        }
    }
    if (!path) {
        const char *e = getenv("QUIRE_CONFIG");
        if (e && *e) {
            path = e;
            how = "QUIRE_CONFIG";
        }
    }
    int rc;
    if (path && (rc = qr_options_load_file(o, path))) {
        if (rc == QR_ENOTFOUND)
            qr_fail(rc, "config file %s (named by %s) does not exist", path, how);
        return rc;
    }
    if ((rc = qr_options_load_env(o)))
        return rc;
    return qr_options_parse_args(o, n, args, allowed);
}

/* ---- getters ---- */

static const opt_value *get(const qr_options *o, int id, qr_opt_type want)
{
    if (!o || id < 0 || id >= QR_OPT_COUNT)
        return NULL;
    qr_opt_type t = table[id].type;
    if (t == want || (want == QR_OPT_STRING && t == QR_OPT_ENUM))
        return &o->v[id];
    return NULL;
}

int64_t qr_opt_int(const qr_options *o, int id)
{
    const opt_value *v = get(o, id, QR_OPT_INT);
    return v ? v->i : 0;
}

double qr_opt_float(const qr_options *o, int id)
{
    const opt_value *v = get(o, id, QR_OPT_FLOAT);
    return v ? v->f : 0.0;
}

const char *qr_opt_str(const qr_options *o, int id)
{
    const opt_value *v = get(o, id, QR_OPT_STRING);
    if (!v)
        return NULL;
    if (table[id].flags & QR_OPTF_REPEAT)
        return v->n_items ? v->items[v->n_items - 1] : "";
    return v->s ? v->s : "";
}

bool qr_opt_bool(const qr_options *o, int id)
{
    const opt_value *v = get(o, id, QR_OPT_BOOL);
    return v ? v->b : false;
}

size_t qr_opt_count(const qr_options *o, int id)
{
    const opt_value *v = get(o, id, QR_OPT_STRING);
    return v ? v->n_items : 0;
}

const char *qr_opt_item(const qr_options *o, int id, size_t i)
{
    const opt_value *v = get(o, id, QR_OPT_STRING);
    return v && i < v->n_items ? v->items[i] : NULL;
}

const char *const *qr_opt_items(const qr_options *o, int id)
{
    const opt_value *v = get(o, id, QR_OPT_STRING);
    return v ? (const char *const *)v->items : NULL;
}

qr_opt_source qr_opt_source_of(const qr_options *o, int id)
{
    return o && id >= 0 && id < QR_OPT_COUNT ? o->v[id].src : QR_SRC_DEFAULT;
}

const char *qr_opt_origin(const qr_options *o, int id)
{
    return o && id >= 0 && id < QR_OPT_COUNT ? o->v[id].origin : "";
}

size_t qr_options_n_positional(const qr_options *o) { return o->n_pos; }

const char *qr_options_positional(const qr_options *o, size_t i) { return i < o->n_pos ? o->pos[i] : NULL; }

const char *qr_options_config_path(const qr_options *o) { return o->config_path; }

/* ---- rendering ---- */

typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0) {
        b->oom = true;
        return;
    }
    if (b->n + (size_t)need + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + (size_t)need + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    b->n += (size_t)need;
}

static int sb_finish(sbuf *b, char **out)
{
    if (b->oom || !b->p) {
        free(b->p);
        return qr_fail(QR_ENOMEM, "options: out of memory");
    }
    *out = b->p;
    return 0;
}

/* A string value in config-file syntax: bare when safe, JSON-quoted otherwise. */
static void sb_conf_string(sbuf *b, const char *s)
{
    bool bare = *s != '"';
    size_t n = strlen(s);
    if (n && (s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        bare = false;
    for (const char *c = s; *c && bare; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            bare = false;
    if (bare) {
        sb_printf(b, "%s", s);
        return;
    }
    json_t *j = json_string(s);
    char *q = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    sb_printf(b, "%s", q ? q : "\"\"");
    free(q);
    json_decref(j);
}

static void sb_bounds(sbuf *b, const qr_option_def *d)
{
    switch (d->type) {
    case QR_OPT_INT: sb_printf(b, "integer %lld..%lld", (long long)d->min, (long long)d->max); break;
    case QR_OPT_FLOAT: sb_printf(b, "number %g..%g", d->min, d->max); break;
    case QR_OPT_BOOL: sb_printf(b, "true|false"); break;
    case QR_OPT_ENUM: sb_printf(b, "one of %s", d->choices); break;
    case QR_OPT_STRING: sb_printf(b, "%s", d->flags & QR_OPTF_REPEAT ? "text, repeatable" : "text"); break;
    }
}

int qr_options_render_conf(char **out)
{
    sbuf b = {0};
    char env[96];
    sb_printf(&b, "# quire configuration: every option, with its default.\n"
                  "# Generated by `quire config --dump-default` from the option table (common/options.c).\n"
                  "#\n"
                  "# Syntax: `name = value`; lines starting with '#' are comments. A value in double\n"
                  "# quotes is a JSON string (keeps spaces, allows \\n). `name =` leaves a text option unset.\n"
                  "# Use it with --config FILE or QUIRE_CONFIG=FILE. Precedence, highest first:\n"
                  "# command-line flag (--name VALUE) > environment (QUIRE_NAME) > this file > default.\n");
    /* each section once, where it first appears; options appended to the
     * table later under an earlier section join it */
    for (int s = 0; s < QR_OPT_COUNT; s++) {
        const char *section = table[s].section;
        bool first = !(table[s].flags & QR_OPTF_CLI);
        for (int j = 0; j < s && first; j++)
            first = (table[j].flags & QR_OPTF_CLI) || strcmp(table[j].section, section) != 0;
        if (!first)
            continue;
        sb_printf(&b, "\n# ---- %s ----\n", section);
        for (int i = s; i < QR_OPT_COUNT; i++) {
            const qr_option_def *d = &table[i];
            if ((d->flags & QR_OPTF_CLI) || strcmp(d->section, section) != 0)
                continue;
            qr_option_env_name(d, env, sizeof env);
            sb_printf(&b, "\n# %s\n# (", d->help);
            sb_bounds(&b, d);
            sb_printf(&b, "; flag --%s; environment %s)\n%s =", d->name, env, d->name);
            if (*d->def)
                sb_printf(&b, " ");
            if (d->type == QR_OPT_STRING)
                sb_conf_string(&b, d->def);
            else
                sb_printf(&b, "%s", d->def);
            sb_printf(&b, "\n");
        }
    }
    return sb_finish(&b, out);
}

int qr_options_render_values(const qr_options *o, char **out)
{
    sbuf b = {0};
    for (int i = 0; i < QR_OPT_COUNT; i++) {
        const qr_option_def *d = &table[i];
        const opt_value *v = &o->v[i];
        if (d->flags & QR_OPTF_CLI)
            continue;
        if (d->flags & QR_OPTF_REPEAT) {
            if (!v->n_items)
                sb_printf(&b, "%s =  # %s\n", d->name, v->origin);
            for (size_t k = 0; k < v->n_items; k++) {
                sb_printf(&b, "%s = ", d->name);
                sb_conf_string(&b, v->items[k]);
                sb_printf(&b, "  # %s\n", v->origin);
            }
            continue;
        }
        if (d->type == QR_OPT_STRING && !(v->s && *v->s)) {
            sb_printf(&b, "%s =  # %s\n", d->name, v->origin);
            continue;
        }
        sb_printf(&b, "%s = ", d->name);
        switch (d->type) {
        case QR_OPT_INT: sb_printf(&b, "%lld", (long long)v->i); break;
        case QR_OPT_FLOAT: sb_printf(&b, "%.9g", v->f); break;
        case QR_OPT_BOOL: sb_printf(&b, "%s", v->b ? "true" : "false"); break;
        case QR_OPT_ENUM: sb_printf(&b, "%s", v->s); break;
        case QR_OPT_STRING: sb_conf_string(&b, v->s ? v->s : ""); break;
        }
        sb_printf(&b, "  # %s\n", v->origin);
    }
    return sb_finish(&b, out);
}

int qr_options_render_help(const int *ids, char **out)
{
    sbuf b = {0};
    for (const int *p = ids; *p >= 0; p++) {
        const qr_option_def *d = qr_option_def_at(*p);
        if (!d)
            continue;
        char flag[64];
        const char *arg = d->type == QR_OPT_BOOL ? "" : d->type == QR_OPT_INT ? " N"
                          : d->type == QR_OPT_FLOAT ? " X" : d->type == QR_OPT_ENUM ? " CHOICE" : " TEXT";
        snprintf(flag, sizeof flag, "--%s%s", d->name, arg);
        sb_printf(&b, "  %-22s %s", flag, d->help);
        if (d->type != QR_OPT_BOOL) {
            sb_printf(&b, " [");
            sb_bounds(&b, d);
            if (*d->def)
                sb_printf(&b, "; default %s", d->def);
            sb_printf(&b, "]");
        }
        sb_printf(&b, "\n");
    }
    return sb_finish(&b, out);
}
