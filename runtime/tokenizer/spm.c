/* Score-based SentencePiece model (see spm.h). One call encodes one pre-token; all
 * working memory is per call, so a finalized tokenizer stays shareable between threads. */
#include "runtime/tokenizer/spm.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"

typedef struct {
    float *scores; /* (n) score of each id */
    size_t n;
} spm_data;

/* A run of the input: text[off .. off+n); n == 0 once merged into its left neighbour.
 * 32-bit fields: inputs are capped at QR_TOK_MAX_INPUT (64 MiB), and this array has one
 * entry per character, so its size matters. */
typedef struct {
    int32_t prev, next;
    uint32_t off, n;
} spm_sym;

typedef struct {
    float score;
    int32_t left, right;
    uint32_t size; /* bytes of the merged text when the pair was queued */
} spm_bigram;

typedef struct {
    spm_bigram *v;
    size_t n, cap;
} spm_heap;

/* a pops before b: higher score first, then the leftmost pair. */
static int bigram_before(const spm_bigram *a, const spm_bigram *b)
{
    if (a->score != b->score)
        return a->score > b->score;
    return a->left < b->left;
}

static int heap_push(spm_heap *h, spm_bigram b)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        spm_bigram *p = realloc(h->v, cap * sizeof *p);
        if (!p)
            return qr_fail(QR_ENOMEM, "tokenizer: spm bigram queue");
        h->v = p;
        h->cap = cap;
    }
    size_t i = h->n++;
    h->v[i] = b;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!bigram_before(&h->v[i], &h->v[parent]))
            break;
        spm_bigram t = h->v[i];
        h->v[i] = h->v[parent];
        h->v[parent] = t;
        i = parent;
    }
    return 0;
}

static spm_bigram heap_pop(spm_heap *h)
{
    spm_bigram top = h->v[0];
    h->v[0] = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        if (l < h->n && bigram_before(&h->v[l], &h->v[best]))
            best = l;
        if (r < h->n && bigram_before(&h->v[r], &h->v[best]))
            best = r;
        if (best == i)
            break;
        spm_bigram t = h->v[i];
        h->v[i] = h->v[best];
        h->v[best] = t;
        i = best;
    }
    return top;
}

/* Queues (left, right) if their concatenation is a vocabulary piece. */
static int try_bigram(const qr_tokenizer *t, const spm_data *d, const char *text, const spm_sym *syms,
                      int32_t left, int32_t right, spm_heap *h)
{
    if (left < 0 || right < 0)
        return 0;
    uint32_t size = syms[left].n + syms[right].n;
    int32_t id = qr_tok_vocab_get(t, text + syms[left].off, size);
    if (id < 0 || (size_t)id >= d->n)
        return 0;
    return heap_push(h, (spm_bigram){d->scores[id], left, right, size});
}

/* Byte length of the UTF-8 sequence starting with lead byte c (1 for stray bytes). */
static size_t utf8_len(unsigned char c)
{
    if (c < 0xc0)
        return 1;
    if (c < 0xe0)
        return 2;
    if (c < 0xf0)
        return 3;
    return 4;
}

static int spm_encode(const qr_tokenizer *t, const char *text, size_t len, qr_tok_ids *out)
{
    const spm_data *d = t->model.custom_data;
    int rc = 0;
    if (len > QR_TOK_MAX_INPUT)
        return qr_fail(QR_ELIMIT, "tokenizer: %zu bytes in one piece of text (limit %zu)", len, QR_TOK_MAX_INPUT);
    spm_heap h = {0};
    spm_sym *syms = malloc((len ? len : 1) * sizeof *syms);
    if (!syms)
        return qr_fail(QR_ENOMEM, "tokenizer: spm symbols");
    int32_t n = 0;
    for (size_t off = 0; off < len; n++) {
        size_t cl = utf8_len((unsigned char)text[off]);
        if (cl > len - off)
            cl = len - off;
        syms[n] = (spm_sym){n - 1, off + cl == len ? -1 : n + 1, (uint32_t)off, (uint32_t)cl};
        off += cl;
    }
    for (int32_t i = 1; i < n && !rc; i++)
        rc = try_bigram(t, d, text, syms, i - 1, i, &h);
    while (!rc && h.n > 0) {
        spm_bigram b = heap_pop(&h);
        spm_sym *l = &syms[b.left], *r = &syms[b.right];
        /* Stale entry: one side was merged away or grew since it was queued. */
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
            continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            syms[r->next].prev = b.left;
        rc = try_bigram(t, d, text, syms, l->prev, b.left, &h);
        if (!rc)
            rc = try_bigram(t, d, text, syms, b.left, l->next, &h);
    }
    for (int32_t i = n ? 0 : -1; i >= 0 && !rc; i = syms[i].next) {
        int32_t id = qr_tok_vocab_get(t, text + syms[i].off, syms[i].n);
        if (id >= 0) {
            rc = qr_tok_ids_push(out, id);
            continue;
        }
        /* Only single characters can be missing (merges always form pieces): bytes. */
        for (uint32_t j = 0; j < syms[i].n && !rc; j++) {
            int32_t bid = t->model.byte_fallback_id[(unsigned char)text[syms[i].off + j]];
            if (bid < 0)
                bid = t->model.unk_id;
            if (bid < 0) {
                rc = qr_fail(QR_EFORMAT, "%s: no <0x%02X> piece and no unknown token", t->source ? t->source : "tokenizer",
                             (unsigned char)text[syms[i].off + j]);
                break;
            }
            rc = qr_tok_ids_push(out, bid);
        }
    }
    free(h.v);
    free(syms);
    return rc;
}

static void spm_free(void *p)
{
    spm_data *d = p;
    if (d)
        free(d->scores);
    free(d);
}

int qr_tok_spm_init(qr_tokenizer *t, const float *scores, size_t n)
{
    spm_data *d = calloc(1, sizeof *d);
    if (!d)
        return qr_fail(QR_ENOMEM, "tokenizer: spm model");
    d->scores = malloc((n ? n : 1) * sizeof *d->scores);
    if (!d->scores) {
        free(d);
        return qr_fail(QR_ENOMEM, "tokenizer: spm scores");
    }
    if (n)
        memcpy(d->scores, scores, n * sizeof *scores);
    d->n = n;
    if (t->model.custom_free)
        t->model.custom_free(t->model.custom_data);
    t->model.type = QR_TOK_MODEL_CUSTOM;
    t->model.custom_encode = spm_encode;
    t->model.custom_data = d;
    t->model.custom_free = spm_free;
    return 0;
}
