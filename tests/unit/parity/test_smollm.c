/* Parity of quire with Hugging Face transformers on a real trained model: SmolLM2-135M-Instruct
 * in GGUF Q4_1 (tools/models.sh), on the CPU.
 *
 *   test_smollm CASES.json REF_SCRIPT [KEEP_DIR]
 *                    (smollm_cases.json, tools/reference/smollm_ref.py; KEEP_DIR keeps the
 *                    reference's files for tools/reference/smollm_selfcheck.py)
 *
 * The reference is computed at test time by REF_SCRIPT under QUIRE_PYTHON: transformers reads
 * the same GGUF and dequantizes Q4_1 / Q8_0 to float32, the numbers quire uses with
 * --dtype f32. (A committed fixture would need the full logits of every checked position,
 * ~200 KB per position; running the reference keeps the repository small and checks the
 * packages pinned in tools/python/requirements.txt.) SKIP (77) without the model or python.
 *
 * Asserted:
 *   tokenizer  quire's GGUF tokenizer (tokenizer.ggml.pre "smollm") gives the ids of SmolLM2's
 *              own tokenizer.json pipeline, Sequence[Digits(individual_digits), ByteLevel],
 *              rebuilt by the script with `tokenizers` from the GGUF's vocabulary and merges,
 *              for the strings of CASES.json and every line of the tokenizer oracle corpus
 *              tests/fixtures/tokenizer/oracle/corpus.jsonl (digits, scripts, emoji, whitespace
 *              runs, control tokens such as <|im_start|>, bytes missing from the vocabulary).
 *              transformers' own GGUF tokenizer drops the Digits step; where it differs the
 *              count is reported (not a quire defect).
 *   prompts    for each chat of CASES.json, quire's prompt text and ids equal transformers'
 *              apply_chat_template(add_generation_prompt=True) of the GGUF's chat template:
 *              "messages" cases through qr_chat_render + qr_tokenize (what /v1/chat/completions
 *              does), "question" + "sources" cases through qr_prompt_build (what `quire ask`
 *              does, the messages being its system instruction and qr_prompt_user_text).
 *   detokenize qr_detokenize of each greedy completion (skip_special false and true) is the
 *              pipeline's ByteLevel decoder's text.
 *   f32        greedy: for every chat quire's 64 greedy ids (all chats decoded as one batch,
 *              each fed its own arg-max; eos not special) are the reference's (transformers
 *              generate, do_sample=False, eos disabled); a difference prints both top-2 gaps.
 *              Reference steps whose top-2 gap is below the logits tolerance are counted and
 *              printed, not exempted. logits: max|diff| <= 1e-3 max|logit| at every position
 *              of the "logits_chats" (prompt and continuation, full vocabulary). qr_generate
 *              (temperature 0) gives the reference ids up to its first eos for the
 *              "generate_chats". This f32 side runs on one thread while the reference runs.
 *   bf16, int8 printed, not asserted: top-1 agreement with the reference's greedy ids, the
 *              f32 ids fed back (teacher forcing, so one flip does not derail the rest; they
 *              are the reference's when the f32 check passes), top-1 agreement and max
 *              relative logit error over the "logits_chats" positions.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "generate/chat.h"
#include "generate/prompt.h"
#include "runtime/backend.h"
#include "runtime/models/model.h"
#include "runtime/tokenizer/tokenizer.h"
#include "runtime/weights/gguf.h"
#include "tests/unit/test.h"

#define MODEL_FILE "SmolLM2-135M-Instruct-Q4_1.gguf"
#define N_GREEDY 64
#define LOGIT_TOL 1e-3

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu_s(const struct rusage *r)
{
    return (double)r->ru_utime.tv_sec + (double)r->ru_stime.tv_sec +
           1e-6 * (double)(r->ru_utime.tv_usec + r->ru_stime.tv_usec);
}

static int32_t *iarray(const json_t *a, size_t *n)
{
    *n = json_array_size(a);
    int32_t *v = malloc(sizeof(int32_t) * (*n ? *n : 1));
    for (size_t i = 0; v && i < *n; i++)
        v[i] = (int32_t)json_integer_value(json_array_get(a, i));
    return v;
}

static bool ids_equal(const int32_t *a, size_t na, const json_t *b)
{
    if (json_array_size(b) != na)
        return false;
    for (size_t i = 0; i < na; i++)
        if (a[i] != json_integer_value(json_array_get(b, i)))
            return false;
    return true;
}

/* The arg-max of a logits row, lowest id on ties (as torch.argmax and quire's greedy). */
static int32_t argmax(const float *x, size_t n)
{
    size_t b = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return (int32_t)b;
}

/* Starts argv[0] (no shell); its pid, or -1. */
static pid_t spawn(char *const argv[])
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        execv(argv[0], argv);
        fprintf(stderr, "%s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

/* Exit status of a spawned child, or -1; with nohang, -2 while it runs. The status is
 * kept, so the child may be asked again. */
static int wait_child(pid_t pid, bool nohang)
{
    static pid_t done_pid = -1;
    static int done_rc;
    int st;
    if (pid < 0)
        return -1;
    if (pid == done_pid)
        return done_rc;
    pid_t r;
    while ((r = waitpid(pid, &st, nohang ? WNOHANG : 0)) < 0)
        if (errno != EINTR)
            return -1;
    if (r == 0)
        return -2;
    done_pid = pid;
    return done_rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

typedef struct {
    char *text;   /* quire's rendered prompt */
    int32_t *ids; /* quire's prompt ids */
    size_t n_ids;
    json_t *messages; /* the conversation given to transformers */
} chat_case;

/* quire's prompt for one case of CASES.json; messages for the reference. */
static int build_chat(const json_t *c, const qr_chat_template *ct, const qr_tokenizer *tok, chat_case *out)
{
    int rc;
    const json_t *msgs = json_object_get(c, "messages");
    if (msgs) {
        /* /v1/chat/completions: render, then tokenize with the special tokens the template wrote */
        size_t n = json_array_size(msgs), len = 0;
        qr_chat_message *m = calloc(n, sizeof *m);
        for (size_t i = 0; i < n; i++)
            m[i] = (qr_chat_message){json_string_value(json_object_get(json_array_get(msgs, i), "role")),
                                     json_string_value(json_object_get(json_array_get(msgs, i), "content"))};
        qr_chat_opts co = {.add_generation_prompt = 1, .system_fallback = 1};
        rc = qr_chat_render(ct, m, n, &co, &out->text, &len);
        free(m);
        if (!rc)
            rc = qr_tokenize(tok, out->text, len, false, &out->ids, &out->n_ids);
        out->messages = json_deep_copy(msgs);
        return rc;
    }
    /* quire ask: qr_prompt_build over the sources */
    const json_t *js = json_object_get(c, "sources");
    const char *q = json_string_value(json_object_get(c, "question"));
    size_t n = json_array_size(js);
    qr_source *src = calloc(n, sizeof *src);
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_array_get(js, i);
        src[i] = (qr_source){.chunk_id = i + 1,
                             .path = json_string_value(json_object_get(s, "path")),
                             .title = json_string_value(json_object_get(s, "title")),
                             .page = (int)json_integer_value(json_object_get(s, "page")),
                             .heading = json_string_value(json_object_get(s, "heading")),
                             .text = json_string_value(json_object_get(s, "text")),
                             .text_len = json_string_length(json_object_get(s, "text"))};
    }
    qr_prompt_opts po = {.tmpl = ct, .tok = tok, .n_ctx = 4096, .max_tokens = N_GREEDY};
    qr_prompt p;
    char *user = NULL;
    rc = qr_prompt_build(q, src, n, &po, &p);
    if (!rc) {
        CHECK_INT(p.n_used, n);
        out->text = p.text;
        out->ids = p.ids;
        out->n_ids = p.n_ids;
        rc = qr_prompt_user_text(q, src, n, &user);
    }
    if (!rc)
        out->messages = json_pack("[{s:s, s:s}, {s:s, s:s}]", "role", "system", "content", QR_PROMPT_INSTRUCTION,
                                  "role", "user", "content", user);
    free(user);
    free(src);
    return rc;
}

/* Top-2 gap of a logits row and its max|logit|. */
static void top2_gap(const float *x, size_t n, double *gap, double *mx)
{
    float a = -INFINITY, b = -INFINITY, m = 0;
    for (size_t i = 0; i < n; i++) {
        if (x[i] > a) {
            b = a;
            a = x[i];
        } else if (x[i] > b) {
            b = x[i];
        }
        m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
    }
    *gap = (double)a - (double)b;
    *mx = m;
}

/* Batched greedy over all chats (slot i = chat i), N_GREEDY steps: prefill, then each slot
 * is fed feed[i][t-1] (teacher forcing) or, feed NULL, its own previous arg-max.
 * out[i][t]: the arg-max of step t; gap[i][t] (may be NULL): its top-2 gap / max|logit|. */
static int greedy_batch(qr_model *m, const chat_case *cc, size_t nc, int32_t *const *feed, int32_t **out,
                        double **gap)
{
    size_t v = (size_t)qr_model_cfg(m)->vocab_size, max_len = 0;
    for (size_t i = 0; i < nc; i++)
        max_len = cc[i].n_ids > max_len ? cc[i].n_ids : max_len;
    qr_decoder_state *st = NULL;
    int rc = qr_decoder_state_create(m, (int)nc, (int)(max_len + N_GREEDY), &st);
    float *lg = malloc(sizeof(float) * nc * v);
    qr_dec_seq *seqs = calloc(nc, sizeof *seqs);
    if (!rc && (!lg || !seqs))
        rc = QR_ENOMEM;
    for (int t = 0; !rc && t < N_GREEDY; t++) {
        for (size_t i = 0; i < nc; i++)
            seqs[i] = t == 0 ? (qr_dec_seq){.slot = (int)i, .ids = cc[i].ids, .n = (int32_t)cc[i].n_ids}
                             : (qr_dec_seq){.slot = (int)i, .ids = feed ? &feed[i][t - 1] : &out[i][t - 1], .n = 1};
        if ((rc = qr_decoder_step(st, seqs, (int)nc, lg)))
            break;
        for (size_t i = 0; i < nc; i++) {
            out[i][t] = argmax(lg + i * v, v);
            if (gap) {
                double g, mx;
                top2_gap(lg + i * v, v, &g, &mx);
                gap[i][t] = g / (mx > 0 ? mx : 1);
            }
        }
    }
    free(seqs);
    free(lg);
    qr_decoder_state_free(st);
    return rc;
}

/* Logits at every position of ne sequences (seq[e]: n[e] ids), rows stacked: (sum n, V),
 * malloc'd. One batched decoder state: sequence e gets S slots; slot s first prefills
 * positions [0, s*L) and then feeds one position per step, so all rows come out of L steps
 * of about S*ne rows each instead of sum(n) single-row steps. */
#define SLOTS_PER_SEQ 6
static float *all_logits(qr_model *m, int32_t *const *seq, const size_t *n, size_t ne)
{
    size_t v = (size_t)qr_model_cfg(m)->vocab_size, max_n = 0, max_L = 0, total = 0;
    size_t *L = calloc(ne, sizeof *L), *row0 = calloc(ne, sizeof *row0);
    for (size_t e = 0; e < ne; e++) {
        L[e] = (n[e] + SLOTS_PER_SEQ - 1) / SLOTS_PER_SEQ;
        row0[e] = total;
        total += n[e];
        max_n = n[e] > max_n ? n[e] : max_n;
        max_L = L[e] > max_L ? L[e] : max_L;
    }
    int n_slots = (int)(ne * SLOTS_PER_SEQ), k = 0;
    float *got = malloc(sizeof(float) * total * v), *lg = malloc(sizeof(float) * (size_t)n_slots * v);
    qr_dec_seq *ds = calloc((size_t)n_slots, sizeof *ds);
    size_t *dst = calloc((size_t)n_slots, sizeof *dst);
    qr_decoder_state *st = NULL;
    int rc = got && lg && ds && dst ? qr_decoder_state_create(m, n_slots, (int)max_n, &st) : QR_ENOMEM;
    for (size_t e = 0; !rc && e < ne; e++) /* prefills of positions [0, s*L): cache only */
        for (int s = 1; s < SLOTS_PER_SEQ; s++)
            if ((size_t)s * L[e] < n[e])
                ds[k++] = (qr_dec_seq){.slot = (int)e * SLOTS_PER_SEQ + s, .ids = seq[e], .n = (int32_t)(s * L[e])};
    if (!rc && k)
        rc = qr_decoder_step(st, ds, k, NULL);
    for (size_t t = 0; !rc && t < max_L; t++) {
        k = 0;
        for (size_t e = 0; e < ne; e++)
            for (int s = 0; s < SLOTS_PER_SEQ; s++) {
                size_t pos = (size_t)s * L[e] + t;
                if (t < L[e] && pos < n[e]) {
                    dst[k] = row0[e] + pos;
                    ds[k++] = (qr_dec_seq){.slot = (int)e * SLOTS_PER_SEQ + s, .ids = seq[e] + pos, .n = 1};
                }
            }
        if (!(rc = qr_decoder_step(st, ds, k, lg)))
            for (int i = 0; i < k; i++)
                memcpy(got + dst[i] * v, lg + (size_t)i * v, sizeof(float) * v);
    }
    CHECK_OK(rc);
    qr_decoder_state_free(st);
    free(dst);
    free(ds);
    free(lg);
    free(L);
    free(row0);
    if (rc) {
        free(got);
        return NULL;
    }
    return got;
}

typedef struct {
    size_t steps, agree;     /* greedy steps (teacher forced) and arg-max agreements */
    size_t rows, rows_agree; /* logits rows and their arg-max agreements */
    double worst_rel;        /* max over rows of max|diff| / max|logit| */
} dtype_stats;

/* The reference sequences of the "logits" entries: ids + greedy[:-1] of their chat. */
typedef struct {
    size_t ne;
    int32_t **seq;
    size_t *n, *row0;
    long long *chat;
} ref_logits;

static void ref_logits_load(json_t *ref, ref_logits *r)
{
    json_t *entries = json_object_get(ref, "logits"), *chats = json_object_get(ref, "chats");
    r->ne = json_array_size(entries);
    r->seq = calloc(r->ne, sizeof *r->seq);
    r->n = calloc(r->ne, sizeof *r->n);
    r->row0 = calloc(r->ne, sizeof *r->row0);
    r->chat = calloc(r->ne, sizeof *r->chat);
    for (size_t e = 0; e < r->ne; e++) {
        const json_t *en = json_array_get(entries, e);
        r->chat[e] = json_integer_value(json_object_get(en, "chat"));
        const json_t *c = json_array_get(chats, (size_t)r->chat[e]);
        size_t np, ng;
        int32_t *p = iarray(json_object_get(c, "ids"), &np), *g = iarray(json_object_get(c, "greedy"), &ng);
        r->n[e] = np + ng - 1;
        CHECK_INT(json_integer_value(json_object_get(en, "n")), r->n[e]);
        r->row0[e] = (size_t)json_integer_value(json_object_get(en, "row0"));
        r->seq[e] = malloc(sizeof(int32_t) * r->n[e]);
        memcpy(r->seq[e], p, sizeof(int32_t) * np);
        memcpy(r->seq[e] + np, g, sizeof(int32_t) * (ng - 1));
        free(p);
        free(g);
    }
}

static void ref_logits_free(ref_logits *r)
{
    for (size_t e = 0; e < r->ne; e++)
        free(r->seq[e]);
    free(r->seq);
    free(r->n);
    free(r->row0);
    free(r->chat);
}

/* Compares quire's rows (stacked as all_logits writes them; only the first n_cmp[e] rows of
 * sequence e) with the reference rows streamed from logits.f32. */
static void compare_logits(const float *got, const ref_logits *r, const size_t *n_cmp, size_t v, const char *path,
                           qr_dtype dt, dtype_stats *ds)
{
    FILE *f = fopen(path, "rb");
    CHECK_MSG(f != NULL, "%s: %s", path, strerror(errno));
    float *want = malloc(sizeof(float) * v);
    size_t bad = 0, row = 0;
    for (size_t e = 0; f && want && e < r->ne; row += r->n[e], e++) {
        double worst = 0;
        size_t worst_pos = 0;
        for (size_t p = 0; p < n_cmp[e]; p++) {
            if (fseek(f, (long)((r->row0[e] + p) * v * sizeof(float)), SEEK_SET) ||
                fread(want, sizeof(float), v, f) != v) {
                CHECK_MSG(0, "%s: short read at row %zu", path, r->row0[e] + p);
                break;
            }
            const float *q = got + (row + p) * v;
            double err = 0, mx = 0;
            for (size_t j = 0; j < v; j++) {
                double d = fabs((double)q[j] - want[j]);
                err = d > err ? d : err;
                mx = fabs(want[j]) > mx ? fabs(want[j]) : mx;
            }
            double rel = err / (mx > 0 ? mx : 1);
            if (rel > worst) {
                worst = rel;
                worst_pos = p;
            }
            ds->rows++;
            ds->rows_agree += argmax(q, v) == argmax(want, v);
            if (dt == QR_F32 && err > LOGIT_TOL * mx && bad++ < 5)
                fprintf(stderr, "logits chat %lld position %zu: max|diff| %.3g > %g * max|logit| %.3g\n", r->chat[e], p,
                        err, LOGIT_TOL, mx);
        }
        printf("%-5s logits: chat %lld, %zu positions: max over positions of max|diff|/max|logit| %.3g (position %zu)\n",
               qr_dtype_name(dt), r->chat[e], n_cmp[e], worst, worst_pos);
        ds->worst_rel = worst > ds->worst_rel ? worst : ds->worst_rel;
    }
    if (f)
        fclose(f);
    if (dt == QR_F32)
        CHECK_MSG(bad == 0, "f32 logits: %zu positions beyond %g max|logit|", bad, LOGIT_TOL);
    free(want);
}

/* The public path: qr_generate at temperature 0 (stops at an eos id, excluded). */
static int run_generate(qr_model *m, const chat_case *c, qr_gen_result *g)
{
    qr_sample_params p;
    qr_sample_params_default(&p);
    p.temperature = 0;
    p.max_tokens = N_GREEDY;
    memset(g, 0, sizeof *g);
    return qr_generate(m, c->ids, c->n_ids, &p, NULL, NULL, g);
}

static void print_summary(qr_dtype dt, const dtype_stats *ds, double secs)
{
    printf("%-5s summary: greedy top-1 agreement %.4f (%zu steps), logits top-1 agreement %.4f (%zu positions), "
           "max rel logit diff %.3g [%.1f s]\n", qr_dtype_name(dt), (double)ds->agree / (double)(ds->steps ? ds->steps : 1),
           ds->steps, (double)ds->rows_agree / (double)(ds->rows ? ds->rows : 1), ds->rows, ds->worst_rel, secs);
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: test_smollm CASES.json REF_SCRIPT [KEEP_DIR]\n");
        return 2;
    }
    const char *model = MODEL(MODEL_FILE);
    const char *py = getenv("QUIRE_PYTHON");
    if (!py || access(py, X_OK) != 0) {
        printf("SKIP: python %s not found: run tools/pydeps.sh\n", py ? py : "(QUIRE_PYTHON unset)");
        return 77;
    }
    json_error_t je;
    json_t *cases = json_load_file(argv[1], 0, &je);
    if (!cases) {
        fprintf(stderr, "%s: %s (line %d)\n", argv[1], je.text, je.line);
        return 1;
    }
    const char *corpus = FIXTURE("tokenizer/oracle/corpus.jsonl");
    double t0 = now();

    /* quire's prompts: what the reference is asked about */
    qr_tokenizer *tok = NULL;
    qr_chat_template *ct = NULL;
    CHECK_OK(qr_tokenizer_load(model, &tok));
    CHECK_OK(qr_chat_template_for_model(model, &ct)); /* as quire ask / serve load it */
    if (!tok || !ct)
        return qr_test_done();
    json_t *jchats = json_object_get(cases, "chats"), *jlc = json_object_get(cases, "logits_chats"),
           *jgc = json_object_get(cases, "generate_chats");
    size_t nc = json_array_size(jchats), nl = json_array_size(jlc), ng = json_array_size(jgc);
    chat_case *cc = calloc(nc, sizeof *cc);
    json_t *ref_msgs = json_array();
    for (size_t i = 0; i < nc; i++) {
        CHECK_OK(build_chat(json_array_get(jchats, i), ct, tok, &cc[i]));
        json_array_append_new(ref_msgs, cc[i].messages ? cc[i].messages : json_array());
        cc[i].messages = NULL;
        if (!cc[i].ids)
            return qr_test_done();
    }
    for (size_t e = 0; e < nl; e++)
        CHECK((size_t)json_integer_value(json_array_get(jlc, e)) < nc);
    for (size_t e = 0; e < ng; e++)
        CHECK((size_t)json_integer_value(json_array_get(jgc, e)) < nc);

    /* the reference runs (one thread) while quire computes its f32 side on one thread */
    /* KEEP_DIR (an existing directory) keeps the reference's input and output there, for
     * tools/reference/smollm_selfcheck.py */
    const char *keep = argc == 4 ? argv[3] : NULL;
    char tmp[] = "/tmp/quire-smollm-XXXXXX", in[4200], refp[4200], logp[4200];
    const char *dir = keep ? keep : mkdtemp(tmp);
    CHECK(dir != NULL);
    if (!dir)
        return qr_test_done();
    snprintf(in, sizeof in, "%s/in.json", dir);
    snprintf(refp, sizeof refp, "%s/ref.json", dir);
    snprintf(logp, sizeof logp, "%s/logits.f32", dir);
    json_t *req = json_pack("{s:O, s:s, s:o, s:i, s:O}", "strings", json_object_get(cases, "strings"), "strings_file",
                            corpus, "chats", ref_msgs, "n_greedy", N_GREEDY, "logits_chats", jlc);
    CHECK(req && json_dump_file(req, in, 0) == 0);
    json_decref(req);
    char *args[] = {(char *)py, argv[2], (char *)model, in, (char *)dir, NULL};
    pid_t child = spawn(args);
    CHECK(child > 0);

    int32_t **qg = calloc(nc, sizeof *qg); /* quire's free-running greedy ids */
    double **qgap = calloc(nc, sizeof *qgap);
    for (size_t i = 0; i < nc; i++) {
        qg[i] = calloc(N_GREEDY, sizeof **qg);
        qgap[i] = calloc(N_GREEDY, sizeof **qgap);
    }
    int32_t **lseq = calloc(nl, sizeof *lseq);
    size_t *ln = calloc(nl, sizeof *ln);
    qr_gen_result *gr = calloc(ng, sizeof *gr);
    int *grc = calloc(ng, sizeof *grc);
    const qr_dtype dts[3] = {QR_F32, QR_BF16, QR_I8};
    float *logits[3] = {NULL, NULL, NULL};
    int32_t **tf[3] = {NULL, NULL, NULL}; /* bf16 / int8 teacher-forced arg-max ids */
    double secs[3] = {0, 0, 0};
    qr_backend *be = NULL;
    double tq = now(), tq1 = tq;
    /* The script creates DIR/imported once its packages are imported: until then (a few
     * seconds) it may still skip, and quire's side would be wasted work. */
    char imported[4200];
    snprintf(imported, sizeof imported, "%s/imported", dir);
    while (child > 0 && wait_child(child, true) == -2 && access(imported, F_OK) != 0)
        usleep(20000);
    int early = wait_child(child, true);
    if (early != -2 && early != 0) /* skipped or failed: no quire side */
        goto reference_done;

    /* f32: free-running greedy, logits along that continuation, qr_generate. bf16 / int8:
     * greedy fed quire's f32 ids and logits on the same sequences, which are the reference's
     * when the f32 checks pass. Everything is compared once the reference is there. */
    tq = now();
    CHECK_OK(qr_backend_cpu_create(1, &be));
    for (int d = 0; be && d < 3; d++) {
        double ta = now();
        qr_model *m = NULL;
        qr_model_opts o = {.dtype = dts[d]};
        CHECK_OK(qr_model_load(model, &o, be, &m));
        if (!m)
            break;
        if (d == 0) {
            CHECK_OK(greedy_batch(m, cc, nc, NULL, qg, qgap));
            for (size_t e = 0; e < nl; e++) { /* along quire's own continuation */
                const chat_case *c = &cc[json_integer_value(json_array_get(jlc, e))];
                size_t k = (size_t)(c - cc);
                ln[e] = c->n_ids + N_GREEDY - 1;
                lseq[e] = malloc(sizeof(int32_t) * ln[e]);
                memcpy(lseq[e], c->ids, sizeof(int32_t) * c->n_ids);
                memcpy(lseq[e] + c->n_ids, qg[k], sizeof(int32_t) * (N_GREEDY - 1));
            }
            for (size_t e = 0; e < ng; e++) {
                grc[e] = run_generate(m, &cc[json_integer_value(json_array_get(jgc, e))], &gr[e]);
                CHECK_OK(grc[e]);
            }
        } else {
            tf[d] = calloc(nc, sizeof *tf[d]);
            for (size_t i = 0; i < nc; i++)
                tf[d][i] = calloc(N_GREEDY, sizeof **tf[d]);
            CHECK_OK(greedy_batch(m, cc, nc, qg, tf[d], NULL));
        }
        logits[d] = all_logits(m, lseq, ln, nl);
        qr_model_free(m);
        secs[d] = now() - ta;
    }
    tq1 = now();
    qr_backend_destroy(be);

reference_done:;
    int prc = wait_child(child, false);
    double t1 = now();
    json_t *ref = prc == 0 ? json_load_file(refp, 0, &je) : NULL;
    if (prc == 77) {
        printf("SKIP: the reference script skipped\n");
        if (!keep) {
            unlink(in);
            unlink(imported);
            rmdir(dir);
        }
        return 77;
    }
    CHECK_MSG(prc == 0 && ref, "%s %s: exit %d%s", py, argv[2], prc, ref || prc ? "" : ": no ref.json");
    json_t *rchats = json_object_get(ref, "chats");
    if (!ref || json_array_size(rchats) != nc) {
        CHECK_INT(json_array_size(rchats), nc);
        goto out;
    }

    /* tokenizer: strings of CASES.json, then the corpus lines, in the script's order */
    {
        json_t *rs = json_object_get(ref, "strings"), *strs = json_object_get(cases, "strings");
        size_t n_str = json_array_size(rs), n_case = json_array_size(strs), bad = 0, hf_diff = 0, i = 0;
        FILE *f = fopen(corpus, "r");
        CHECK_MSG(f != NULL, "%s: %s", corpus, strerror(errno));
        char *line = NULL;
        size_t cap = 0;
        for (; i < n_str; i++) {
            json_t *ls = NULL;
            const char *s;
            size_t len;
            if (i < n_case) {
                s = json_string_value(json_array_get(strs, i));
                len = json_string_length(json_array_get(strs, i));
            } else {
                if (!f || getline(&line, &cap, f) < 0)
                    break;
                ls = json_loads(line, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
                s = json_string_value(ls);
                len = json_string_length(ls);
            }
            int32_t *ids = NULL;
            size_t n = 0;
            const json_t *r = json_array_get(rs, i);
            if (!s || qr_tokenize(tok, s, len, false, &ids, &n) || !ids_equal(ids, n, json_object_get(r, "pipeline"))) {
                if (bad++ < 5) {
                    char *want = json_dumps(json_object_get(r, "pipeline"), JSON_COMPACT);
                    fprintf(stderr, "string %zu \"%.60s\": %zu quire ids, reference %s\n", i, s ? s : "?", n, want);
                    free(want);
                }
            }
            if (!json_equal(json_object_get(r, "pipeline"), json_object_get(r, "hf")))
                hf_diff++;
            free(ids);
            json_decref(ls);
        }
        free(line);
        if (f)
            fclose(f);
        CHECK_MSG(i == n_str && n_str > n_case, "tokenizer: compared %zu of %zu strings", i, n_str);
        CHECK_MSG(bad == 0, "tokenizer: %zu of %zu strings differ from the SmolLM2 pipeline", bad, n_str);
        printf("tokenizer: %zu strings, %zu differ from the Digits+ByteLevel pipeline; transformers' GGUF tokenizer "
               "(no Digits step) differs from that pipeline on %zu\n", n_str, bad, hf_diff);
    }

    /* prompts */
    size_t hf_ids_diff = 0, prompt_tokens = 0;
    for (size_t i = 0; i < nc; i++) {
        const json_t *r = json_array_get(rchats, i);
        CHECK_MSG(cc[i].text && !strcmp(cc[i].text, json_string_value(json_object_get(r, "text"))),
                  "chat %zu: quire's prompt text differs from apply_chat_template's:\n%s\n---\n%s", i,
                  cc[i].text ? cc[i].text : "(none)", json_string_value(json_object_get(r, "text")));
        CHECK_MSG(ids_equal(cc[i].ids, cc[i].n_ids, json_object_get(r, "ids")), "chat %zu: prompt ids differ", i);
        hf_ids_diff += !json_equal(json_object_get(r, "ids"), json_object_get(r, "ids_hf"));
        prompt_tokens += cc[i].n_ids;
    }
    printf("prompts: %zu chats (%zu tokens) rendered and tokenized as apply_chat_template + the pipeline; "
           "transformers' own ids differ on %zu\n", nc, prompt_tokens, hf_ids_diff);

    /* f32: greedy ids, logits, qr_generate */
    size_t v = (size_t)json_integer_value(json_object_get(ref, "vocab"));
    int32_t **rg = calloc(nc, sizeof *rg); /* reference greedy ids */
    dtype_stats s32 = {0};
    size_t n_ident = 0;
    for (size_t i = 0; i < nc; i++) {
        const json_t *r = json_array_get(rchats, i);
        size_t k;
        rg[i] = iarray(json_object_get(r, "greedy"), &k);
        CHECK_INT(k, N_GREEDY);
        size_t t = 0;
        while (t < N_GREEDY && t < k && qg[i][t] == rg[i][t])
            t++;
        s32.steps += N_GREEDY;
        s32.agree += t; /* free-running: agreement up to the first difference */
        n_ident += t == N_GREEDY;
        if (t < N_GREEDY && t < k) {
            const json_t *t2 = json_array_get(json_object_get(r, "top2"), t);
            double gap = json_real_value(json_array_get(t2, 2)) / json_real_value(json_array_get(t2, 3));
            fprintf(stderr, "chat %zu: greedy differs at step %zu: quire %d (its top-2 gap %.3g max|logit|), "
                    "reference %d (gap %.3g max|logit|%s)\n", i, t, qg[i][t], qgap[i][t], rg[i][t], gap,
                    gap < LOGIT_TOL ? ": a near tie, closer than the logits tolerance" : "");
        }
    }
    /* detokenization of the greedy ids, with and without the special tokens */
    size_t dec_bad = 0;
    for (size_t i = 0; i < nc; i++)
        for (int skip = 0; skip < 2; skip++) {
            char *text = NULL;
            const char *want = json_string_value(json_object_get(json_array_get(rchats, i), skip ? "decoded_skip" : "decoded"));
            int rc = qr_detokenize(tok, rg[i], N_GREEDY, skip, &text);
            if (rc || !want || strcmp(text, want)) {
                if (dec_bad++ < 3)
                    fprintf(stderr, "chat %zu: detokenized (skip_special %d):\n%s\n--- reference:\n%s\n", i, skip,
                            text ? text : "(error)", want ? want : "(none)");
            }
            free(text);
        }
    CHECK_MSG(dec_bad == 0, "detokenize: %zu of %zu texts differ", dec_bad, 2 * nc);
    printf("detokenize: %zu greedy completions, with and without special tokens: %zu differ from the pipeline's "
           "decoder\n", nc, dec_bad);
    /* Near ties are reported, and still asserted: quire's f32 logits are ~1e-5 max|logit| off */
    double min_gap = INFINITY;
    size_t n_close = 0;
    for (size_t i = 0; i < nc; i++)
        for (size_t t = 0; t < N_GREEDY; t++) {
            const json_t *t2 = json_array_get(json_object_get(json_array_get(rchats, i), "top2"), t);
            double gap = json_real_value(json_array_get(t2, 2)) / json_real_value(json_array_get(t2, 3));
            min_gap = gap < min_gap ? gap : min_gap;
            n_close += gap < LOGIT_TOL;
        }
    printf("f32   greedy: %zu/%zu chats give the reference's %d ids (free-running, batched); %zu of %zu reference "
           "steps are closer than the logits tolerance (top-2 gap < %g max|logit|), the smallest %.3g\n", n_ident, nc,
           N_GREEDY, n_close, nc * N_GREEDY, LOGIT_TOL, min_gap);
    CHECK_MSG(n_ident == nc, "f32 greedy: %zu of %zu chats differ", nc - n_ident, nc);
    ref_logits rl = {0};
    ref_logits_load(ref, &rl);
    CHECK_INT(rl.ne, nl);
    size_t *n_cmp = calloc(nl, sizeof *n_cmp); /* rows on the same ids as the reference's */
    if (logits[0] && rl.ne == nl) {
        for (size_t e = 0; e < nl; e++) {
            while (n_cmp[e] < ln[e] && n_cmp[e] < rl.n[e] && lseq[e][n_cmp[e]] == rl.seq[e][n_cmp[e]])
                n_cmp[e]++;
            CHECK_MSG(n_cmp[e] == rl.n[e] && ln[e] == rl.n[e], "logits chat %lld: sequences differ at %zu", rl.chat[e],
                      n_cmp[e]);
        }
        compare_logits(logits[0], &rl, n_cmp, v, logp, QR_F32, &s32);
    }
    for (size_t e = 0; e < ng; e++) {
        size_t c = (size_t)json_integer_value(json_array_get(jgc, e)), stop = N_GREEDY;
        for (size_t t = 0; t < N_GREEDY && stop == N_GREEDY; t++) /* the reference's first eos */
            if (rg[c][t] == qr_tokenizer_eos(tok))
                stop = t;
        if (grc[e])
            continue;
        bool same = gr[e].n_ids == stop && !memcmp(gr[e].ids, rg[c], sizeof(int32_t) * stop);
        CHECK_MSG(same, "chat %zu: qr_generate gave %zu ids (finish %s), the reference %zu before its first eos", c,
                  gr[e].n_ids, gr[e].finish, stop);
        printf("f32   qr_generate chat %zu: %zu ids, finish %s: %s\n", c, gr[e].n_ids, gr[e].finish,
               same ? "= reference" : "differs");
    }
    print_summary(QR_F32, &s32, secs[0]);

    /* bf16, int8: reported */
    for (int d = 1; d < 3; d++) {
        if (!tf[d] || !logits[d])
            continue;
        dtype_stats ds = {0};
        for (size_t i = 0; i < nc; i++)
            for (size_t t = 0; t < N_GREEDY; t++, ds.steps++)
                ds.agree += tf[d][i][t] == rg[i][t];
        if (rl.ne == nl)
            compare_logits(logits[d], &rl, n_cmp, v, logp, dts[d], &ds);
        print_summary(dts[d], &ds, secs[d]);
    }
    free(n_cmp);
    ref_logits_free(&rl);
    for (size_t i = 0; i < nc; i++)
        free(rg[i]);
    free(rg);
    struct rusage ru_self, ru_child;
    getrusage(RUSAGE_SELF, &ru_self);
    getrusage(RUSAGE_CHILDREN, &ru_child);
    printf("wall: reference %.1f s (quire alongside, one thread: %.1f s), then %.1f s; cpu: quire %.1f s, "
           "reference %.1f s\n", t1 - t0, tq1 - tq, now() - t1, cpu_s(&ru_self), cpu_s(&ru_child));
out:
    if (!keep) {
        unlink(in);
        unlink(imported);
        unlink(refp);
        unlink(logp);
        rmdir(dir);
    }
    for (size_t i = 0; i < nc; i++) {
        free(cc[i].text);
        free(cc[i].ids);
        free(qg[i]);
        free(qgap[i]);
    }
    for (size_t e = 0; e < nl; e++)
        free(lseq[e]);
    for (size_t e = 0; e < ng; e++)
        if (!grc[e])
            qr_gen_result_free(&gr[e]);
    free(gr);
    free(grc);
    free(lseq);
    free(ln);
    free(qg);
    free(qgap);
    for (int d = 0; d < 3; d++) {
        free(logits[d]);
        for (size_t i = 0; tf[d] && i < nc; i++)
            free(tf[d][i]);
        free(tf[d]);
    }
    free(cc);
    json_decref(ref);
    json_decref(cases);
    qr_chat_template_free(ct);
    qr_tokenizer_free(tok);
    return qr_test_done();
}
