/* dump_logits: quire's raw outputs for a list of token ids, for comparison with
 * the torch reference at real model sizes (tools/reference/realshape.sh).
 *
 *   dump_logits MODEL DTYPE OUT.f32 IDS [IDS...]      IDS = comma-separated token ids
 *
 * Decoder: exactly one IDS; OUT gets the logits of every position, (n, vocab)
 * little-endian f32, computed in one batched step over n slots (slot i prefills
 * ids[0..i]). Encoder: one IDS per sequence (special tokens included); OUT gets
 * the pooled (and, per the model's files, normalized) embeddings, (n_seq, d). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "runtime/backend.h"
#include "runtime/models/model.h"

static int32_t *parse_ids(const char *s, int32_t *n)
{
    int32_t cap = 16, k = 0;
    int32_t *v = malloc(sizeof *v * (size_t)cap);
    while (v && *s) {
        char *end;
        long x = strtol(s, &end, 10);
        if (end == s)
            break;
        if (k == cap) {
            int32_t *nv = realloc(v, sizeof *v * (size_t)(cap *= 2));
            if (!nv) {
                free(v);
                return NULL;
            }
            v = nv;
        }
        v[k++] = (int32_t)x;
        s = *end == ',' ? end + 1 : end;
    }
    *n = k;
    return v;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: dump_logits MODEL DTYPE OUT.f32 IDS [IDS...]\n");
        return 2;
    }
    qr_dtype dt;
    if (qr_dtype_parse(argv[2], &dt)) {
        fprintf(stderr, "dump_logits: dtype %s: unknown\n", argv[2]);
        return 2;
    }
    qr_backend *be = NULL;
    qr_model *m = NULL;
    qr_model_opts o = {.dtype = dt};
    int rc = qr_backend_cpu_create(0, &be);
    if (!rc)
        rc = qr_model_load(argv[1], &o, be, &m);
    if (rc) {
        fprintf(stderr, "dump_logits: %s: %s\n", qr_strerror(rc), qr_last_error());
        return 1;
    }
    const qr_model_config *c = qr_model_cfg(m);
    int n_seq = argc - 4;
    int32_t **seqs = calloc((size_t)n_seq, sizeof *seqs), *lens = calloc((size_t)n_seq, sizeof *lens);
    for (int i = 0; i < n_seq; i++)
        seqs[i] = parse_ids(argv[4 + i], &lens[i]);
    float *out = NULL;
    size_t n_out = 0;
    if (c->arch == QR_ARCH_BERT) {
        n_out = (size_t)n_seq * (size_t)c->d_model;
        out = malloc(sizeof *out * n_out);
        rc = qr_embed_ids(m, (const int32_t *const *)seqs, lens, n_seq, out);
    } else if (n_seq != 1) {
        fprintf(stderr, "dump_logits: a decoder takes one id list\n");
        return 2;
    } else {
        int n = lens[0];
        n_out = (size_t)n * (size_t)c->vocab_size;
        out = malloc(sizeof *out * n_out);
        qr_dec_seq *ds = calloc((size_t)n, sizeof *ds);
        for (int i = 0; i < n; i++)
            ds[i] = (qr_dec_seq){.slot = i, .ids = seqs[0], .n = i + 1};
        qr_decoder_state *st = NULL;
        rc = qr_decoder_state_create(m, n, n, &st);
        if (!rc)
            rc = qr_decoder_step(st, ds, n, out);
        qr_decoder_state_free(st);
        free(ds);
    }
    if (rc) {
        fprintf(stderr, "dump_logits: %s: %s\n", qr_strerror(rc), qr_last_error());
        return 1;
    }
    FILE *f = fopen(argv[3], "wb");
    if (!f || fwrite(out, sizeof *out, n_out, f) != n_out || fclose(f) != 0) {
        fprintf(stderr, "dump_logits: %s: write failed\n", argv[3]);
        return 1;
    }
    for (int i = 0; i < n_seq; i++)
        free(seqs[i]);
    free(seqs);
    free(lens);
    free(out);
    qr_model_free(m);
    qr_backend_destroy(be);
    return 0;
}
