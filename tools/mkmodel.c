/* mkmodel: writes a random-weight Hugging Face model directory from a config.json,
 * for benchmarks and tests of real model shapes without the real weights.
 *
 *   mkmodel [--dtype f32|bf16] [--seed N] [--std S] [--no-aux] CONFIG.json OUTDIR
 *
 * OUTDIR gets a byte copy of CONFIG.json as config.json and model.safetensors
 * holding every tensor the Hugging Face class would save, under HF names:
 *   model_type "bert"                    BertModel (embeddings.*, encoder.layer.N.*, pooler.*)
 *   model_type "llama"/"mistral"/"qwen2" LlamaForCausalLM-style (model.*, lm_head.weight
 *                                        unless tie_word_embeddings); qwen2 has q/k/v biases,
 *                                        llama with attention_bias has q/k/v/o biases.
 * Unless --no-aux, the tokenizer and sentence-transformers files found next to
 * CONFIG.json (tokenizer.json, generation_config.json, modules.json, 1_Pooling/...)
 * are copied too, so the directory loads like a downloaded model.
 *
 * Values: matrices and embeddings ~ N(0, std) (std 0.02 = HF initializer_range),
 * biases ~ N(0, std), norm weights 1 and norm biases 0. Each tensor has its own
 * deterministic stream seeded from (seed, tensor name), so the output depends
 * only on the config, the seed and the dtype.
 *
 * Safetensors layout written: u64 LE header length, JSON header (padded with
 * spaces to a multiple of 8), then the tensors back to back in header order. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <jansson.h>

#include "runtime/dtype.h"

enum { INIT_NORMAL = 0, INIT_ONES, INIT_ZEROS };

typedef struct {
    char name[128];
    int n_dims;
    int64_t shape[2]; /* (rows, cols) or (n,) */
    int init;
} tdesc;

typedef struct {
    tdesc *t;
    size_t n, cap;
} tlist;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("mkmodel: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void add(tlist *l, int init, int64_t r, int64_t c, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void add(tlist *l, int init, int64_t r, int64_t c, const char *fmt, ...)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->t = realloc(l->t, l->cap * sizeof *l->t);
        if (!l->t)
            die("out of memory");
    }
    tdesc *d = &l->t[l->n++];
    memset(d, 0, sizeof *d);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->name, sizeof d->name, fmt, ap);
    va_end(ap);
    d->init = init;
    d->n_dims = c > 0 ? 2 : 1;
    d->shape[0] = r;
    d->shape[1] = c;
}

static int64_t numel(const tdesc *d) { return d->n_dims == 2 ? d->shape[0] * d->shape[1] : d->shape[0]; }

static int64_t geti(json_t *cfg, const char *key, int64_t dflt, bool required)
{
    json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) {
        if (required)
            die("config.json: field %s: missing", key);
        return dflt;
    }
    if (!json_is_integer(v))
        die("config.json: field %s: not an integer", key);
    json_int_t x = json_integer_value(v);
    if (x < 0 || x > (1LL << 31))
        die("config.json: field %s: %lld out of range", key, (long long)x);
    return (int64_t)x;
}

static bool getb(json_t *cfg, const char *key, bool dflt)
{
    json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v))
        return dflt;
    if (!json_is_boolean(v))
        die("config.json: field %s: not a boolean", key);
    return json_is_true(v);
}

static void bert_tensors(json_t *cfg, tlist *l)
{
    int64_t h = geti(cfg, "hidden_size", 0, true), nl = geti(cfg, "num_hidden_layers", 0, true);
    int64_t ff = geti(cfg, "intermediate_size", 0, true), v = geti(cfg, "vocab_size", 0, true);
    int64_t p = geti(cfg, "max_position_embeddings", 512, false), tv = geti(cfg, "type_vocab_size", 2, false);
    add(l, INIT_NORMAL, v, h, "embeddings.word_embeddings.weight");
    add(l, INIT_NORMAL, p, h, "embeddings.position_embeddings.weight");
    add(l, INIT_NORMAL, tv, h, "embeddings.token_type_embeddings.weight");
    add(l, INIT_ONES, h, 0, "embeddings.LayerNorm.weight");
    add(l, INIT_ZEROS, h, 0, "embeddings.LayerNorm.bias");
    for (int64_t i = 0; i < nl; i++) {
        const char *qkv[] = {"query", "key", "value"};
        for (int j = 0; j < 3; j++) {
            add(l, INIT_NORMAL, h, h, "encoder.layer.%" PRId64 ".attention.self.%s.weight", i, qkv[j]);
            add(l, INIT_NORMAL, h, 0, "encoder.layer.%" PRId64 ".attention.self.%s.bias", i, qkv[j]);
        }
        add(l, INIT_NORMAL, h, h, "encoder.layer.%" PRId64 ".attention.output.dense.weight", i);
        add(l, INIT_NORMAL, h, 0, "encoder.layer.%" PRId64 ".attention.output.dense.bias", i);
        add(l, INIT_ONES, h, 0, "encoder.layer.%" PRId64 ".attention.output.LayerNorm.weight", i);
        add(l, INIT_ZEROS, h, 0, "encoder.layer.%" PRId64 ".attention.output.LayerNorm.bias", i);
        add(l, INIT_NORMAL, ff, h, "encoder.layer.%" PRId64 ".intermediate.dense.weight", i);
        add(l, INIT_NORMAL, ff, 0, "encoder.layer.%" PRId64 ".intermediate.dense.bias", i);
        add(l, INIT_NORMAL, h, ff, "encoder.layer.%" PRId64 ".output.dense.weight", i);
        add(l, INIT_NORMAL, h, 0, "encoder.layer.%" PRId64 ".output.dense.bias", i);
        add(l, INIT_ONES, h, 0, "encoder.layer.%" PRId64 ".output.LayerNorm.weight", i);
        add(l, INIT_ZEROS, h, 0, "encoder.layer.%" PRId64 ".output.LayerNorm.bias", i);
    }
    add(l, INIT_NORMAL, h, h, "pooler.dense.weight");
    add(l, INIT_NORMAL, h, 0, "pooler.dense.bias");
}

static void llama_tensors(json_t *cfg, const char *type, tlist *l)
{
    int64_t h = geti(cfg, "hidden_size", 0, true), nl = geti(cfg, "num_hidden_layers", 0, true);
    int64_t ff = geti(cfg, "intermediate_size", 0, true), v = geti(cfg, "vocab_size", 0, true);
    int64_t nh = geti(cfg, "num_attention_heads", 0, true);
    int64_t nkv = geti(cfg, "num_key_value_heads", nh, false);
    if (nh <= 0 || h % nh)
        die("config.json: num_attention_heads %" PRId64 " does not divide hidden_size %" PRId64, nh, h);
    int64_t hd = geti(cfg, "head_dim", h / nh, false);
    bool qwen2 = strcmp(type, "qwen2") == 0;
    bool attn_bias = getb(cfg, "attention_bias", false);
    bool tied = getb(cfg, "tie_word_embeddings", false); /* LlamaConfig/Qwen2Config/MistralConfig default */
    if (getb(cfg, "mlp_bias", false))
        die("config.json: mlp_bias: not supported");
    add(l, INIT_NORMAL, v, h, "model.embed_tokens.weight");
    for (int64_t i = 0; i < nl; i++) {
        add(l, INIT_ONES, h, 0, "model.layers.%" PRId64 ".input_layernorm.weight", i);
        add(l, INIT_NORMAL, nh * hd, h, "model.layers.%" PRId64 ".self_attn.q_proj.weight", i);
        add(l, INIT_NORMAL, nkv * hd, h, "model.layers.%" PRId64 ".self_attn.k_proj.weight", i);
        add(l, INIT_NORMAL, nkv * hd, h, "model.layers.%" PRId64 ".self_attn.v_proj.weight", i);
        if (qwen2 || attn_bias) {
            add(l, INIT_NORMAL, nh * hd, 0, "model.layers.%" PRId64 ".self_attn.q_proj.bias", i);
            add(l, INIT_NORMAL, nkv * hd, 0, "model.layers.%" PRId64 ".self_attn.k_proj.bias", i);
            add(l, INIT_NORMAL, nkv * hd, 0, "model.layers.%" PRId64 ".self_attn.v_proj.bias", i);
        }
        add(l, INIT_NORMAL, h, nh * hd, "model.layers.%" PRId64 ".self_attn.o_proj.weight", i);
        if (attn_bias && !qwen2)
            add(l, INIT_NORMAL, h, 0, "model.layers.%" PRId64 ".self_attn.o_proj.bias", i);
        add(l, INIT_ONES, h, 0, "model.layers.%" PRId64 ".post_attention_layernorm.weight", i);
        add(l, INIT_NORMAL, ff, h, "model.layers.%" PRId64 ".mlp.gate_proj.weight", i);
        add(l, INIT_NORMAL, ff, h, "model.layers.%" PRId64 ".mlp.up_proj.weight", i);
        add(l, INIT_NORMAL, h, ff, "model.layers.%" PRId64 ".mlp.down_proj.weight", i);
    }
    add(l, INIT_ONES, h, 0, "model.norm.weight");
    if (!tied) /* HF save_pretrained drops the tied lm_head */
        add(l, INIT_NORMAL, v, h, "lm_head.weight");
}

/* splitmix64: small, fast, good enough for test weights. */
static uint64_t sm64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

/* Fills n values of tensor d; rng state carries across calls for one tensor. */
static void fill(const tdesc *d, float std, uint64_t *rng, float *buf, int64_t n)
{
    if (d->init != INIT_NORMAL) {
        for (int64_t i = 0; i < n; i++)
            buf[i] = d->init == INIT_ONES ? 1.0f : 0.0f;
        return;
    }
    /* Box-Muller, two values per pair of uniforms in (0, 1]. */
    for (int64_t i = 0; i < n; i += 2) {
        double u1 = ((sm64(rng) >> 11) + 1) * (1.0 / 9007199254740992.0);
        double u2 = (sm64(rng) >> 11) * (1.0 / 9007199254740992.0);
        double r = sqrt(-2.0 * log(u1)) * std;
        buf[i] = (float)(r * cos(6.283185307179586 * u2));
        if (i + 1 < n)
            buf[i + 1] = (float)(r * sin(6.283185307179586 * u2));
    }
}

static void copy_file(const char *src, const char *dst)
{
    FILE *in = fopen(src, "rb");
    if (!in)
        return; /* optional files */
    FILE *out = fopen(dst, "wb");
    if (!out)
        die("%s: %s", dst, strerror(errno));
    char buf[1 << 16];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, k, out) != k)
            die("%s: write failed", dst);
    if (ferror(in))
        die("%s: read failed", src);
    fclose(in);
    if (fclose(out) != 0)
        die("%s: write failed", dst);
}

static void usage(void)
{
    fprintf(stderr, "usage: mkmodel [--dtype f32|bf16] [--seed N] [--std S] [--no-aux] CONFIG.json OUTDIR\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *dtname = "f32", *cfg_path = NULL, *out_dir = NULL;
    uint64_t seed = 1;
    float std = 0.02f;
    bool aux = true;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dtype") && i + 1 < argc)
            dtname = argv[++i];
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--std") && i + 1 < argc)
            std = strtof(argv[++i], NULL);
        else if (!strcmp(argv[i], "--no-aux"))
            aux = false;
        else if (argv[i][0] == '-')
            usage();
        else if (!cfg_path)
            cfg_path = argv[i];
        else if (!out_dir)
            out_dir = argv[i];
        else
            usage();
    }
    if (!cfg_path || !out_dir)
        usage();
    bool bf16 = !strcmp(dtname, "bf16");
    if (!bf16 && strcmp(dtname, "f32"))
        die("--dtype %s: want f32 or bf16", dtname);

    json_error_t jerr;
    json_t *cfg = json_load_file(cfg_path, 0, &jerr);
    if (!cfg || !json_is_object(cfg))
        die("%s: line %d: %s", cfg_path, jerr.line, jerr.text);
    const char *type = json_string_value(json_object_get(cfg, "model_type"));
    if (!type)
        die("%s: field model_type: missing", cfg_path);
    tlist l = {0};
    if (!strcmp(type, "bert"))
        bert_tensors(cfg, &l);
    else if (!strcmp(type, "llama") || !strcmp(type, "mistral") || !strcmp(type, "qwen2"))
        llama_tensors(cfg, type, &l);
    else
        die("%s: model_type %s: not supported (bert, llama, mistral, qwen2)", cfg_path, type);

    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
        die("%s: %s", out_dir, strerror(errno));
    char path[8192], src[8192];
    snprintf(path, sizeof path, "%s/config.json", out_dir);
    copy_file(cfg_path, path);
    if (aux) {
        /* The config's directory, to pick up tokenizer and sentence-transformers files. */
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", cfg_path);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = 0;
        else
            snprintf(dir, sizeof dir, ".");
        const char *files[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                               "generation_config.json", "vocab.txt", "modules.json",
                               "sentence_bert_config.json", "config_sentence_transformers.json",
                               "1_Pooling/config.json", "2_Normalize/config.json"};
        for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
            snprintf(src, sizeof src, "%s/%s", dir, files[i]);
            struct stat st;
            if (stat(src, &st) != 0)
                continue;
            char *sub = strchr(files[i], '/');
            if (sub) {
                snprintf(path, sizeof path, "%s/%.*s", out_dir, (int)(sub - files[i]), files[i]);
                if (mkdir(path, 0755) != 0 && errno != EEXIST)
                    die("%s: %s", path, strerror(errno));
            }
            snprintf(path, sizeof path, "%s/%s", out_dir, files[i]);
            copy_file(src, path);
        }
    }

    /* Header: tensors in list order, back to back. */
    size_t esz = bf16 ? 2 : 4;
    json_t *hdr = json_object();
    json_t *meta = json_object();
    json_object_set_new(meta, "format", json_string("pt"));
    json_object_set_new(hdr, "__metadata__", meta);
    uint64_t off = 0;
    for (size_t i = 0; i < l.n; i++) {
        json_t *e = json_object(), *shape = json_array(), *offs = json_array();
        for (int k = 0; k < l.t[i].n_dims; k++)
            json_array_append_new(shape, json_integer(l.t[i].shape[k]));
        uint64_t nb = (uint64_t)numel(&l.t[i]) * esz;
        json_array_append_new(offs, json_integer((json_int_t)off));
        json_array_append_new(offs, json_integer((json_int_t)(off + nb)));
        json_object_set_new(e, "dtype", json_string(bf16 ? "BF16" : "F32"));
        json_object_set_new(e, "shape", shape);
        json_object_set_new(e, "data_offsets", offs);
        json_object_set_new(hdr, l.t[i].name, e);
        off += nb;
    }
    char *htext = json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!htext)
        die("out of memory");
    size_t hlen = strlen(htext), padded = (hlen + 7) & ~(size_t)7;

    snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
    FILE *f = fopen(path, "wb");
    if (!f)
        die("%s: %s", path, strerror(errno));
    uint8_t len8[8];
    for (int k = 0; k < 8; k++)
        len8[k] = (uint8_t)((uint64_t)padded >> (8 * k));
    fwrite(len8, 1, 8, f);
    fwrite(htext, 1, hlen, f);
    for (size_t k = hlen; k < padded; k++)
        fputc(' ', f);

    enum { CHUNK = 1 << 20 };
    float *buf = malloc(CHUNK * sizeof *buf);
    uint16_t *hbuf = malloc(CHUNK * sizeof *hbuf);
    if (!buf || !hbuf)
        die("out of memory");
    for (size_t i = 0; i < l.n; i++) {
        uint64_t rng = seed * 0x9e3779b97f4a7c15ULL ^ fnv1a(l.t[i].name);
        int64_t n = numel(&l.t[i]);
        for (int64_t done = 0; done < n; done += CHUNK) {
            int64_t k = n - done < CHUNK ? n - done : CHUNK;
            fill(&l.t[i], std, &rng, buf, k);
            size_t w;
            if (bf16) {
                for (int64_t j = 0; j < k; j++)
                    hbuf[j] = qr_f32_to_bf16(buf[j]);
                w = fwrite(hbuf, 2, (size_t)k, f); /* host is little-endian (x86-64, aarch64) */
            } else {
                w = fwrite(buf, 4, (size_t)k, f);
            }
            if (w != (size_t)k)
                die("%s: write failed: %s", path, strerror(errno));
        }
    }
    if (fclose(f) != 0)
        die("%s: write failed: %s", path, strerror(errno));
    fprintf(stderr, "mkmodel: %s: %zu tensors, %.1f MB (%s)\n", path, l.n, (double)off / 1e6, dtname);
    free(buf);
    free(hbuf);
    free(htext);
    free(l.t);
    json_decref(hdr);
    json_decref(cfg);
    return 0;
}
