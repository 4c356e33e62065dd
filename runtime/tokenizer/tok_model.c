/* Tokenizer models: WordPiece and BPE, applied to one pre-token at a time, with the
 * semantics of Hugging Face `tokenizers` (models/wordpiece, models/bpe). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "runtime/tokenizer/tok_internal.h"

/* ---- WordPiece ------------------------------------------------------------------------- */

/* Greedy longest-match-first; a word with any unmatchable remainder, or longer than
 * max_input_chars_per_word characters, becomes a single unk. */
int qr_tok_wordpiece_word(const qr_tokenizer *t, const char *w, size_t len, qr_tok_ids *out)
{
    const qr_tok_model *m = &t->model;
    int rc = 0;
    if (len == 0)
        return 0;
    size_t nchars = 0;
    for (size_t i = 0; i < len; i++)
        nchars += ((unsigned char)w[i] & 0xC0) != 0x80;
    if (nchars > (size_t)m->max_input_chars_per_word)
        return qr_tok_ids_push(out, m->unk_id);

    size_t mark = out->n, start = 0;
    qr_tok_buf sub = {0};
    while (start < len) {
        /* No vocabulary piece is longer than max_piece_len bytes, so longer candidates
         * cannot match: start the search there (at a character boundary). */
        size_t end = len;
        size_t lim = start + t->vocab.max_piece_len;
        if (end > lim) {
            end = lim;
            while (end > start && ((unsigned char)w[end] & 0xC0) == 0x80)
                end--;
        }
        int32_t found = -1;
        while (end > start) {
            int32_t id;
            if (start > 0) {
                sub.n = 0;
                if ((rc = qr_tok_buf_put(&sub, m->cont_prefix, m->cont_prefix_len)) ||
                    (rc = qr_tok_buf_put(&sub, w + start, end - start)))
                    goto fail;
                id = qr_tok_vocab_get(t, sub.p, sub.n);
            } else {
                id = qr_tok_vocab_get(t, w, end);
            }
            if (id >= 0) {
                found = id;
                break;
            }
            end--;
            while (end > start && ((unsigned char)w[end] & 0xC0) == 0x80)
                end--;
        }
        if (found < 0) {
            out->n = mark;
            rc = qr_tok_ids_push(out, m->unk_id);
            goto fail;
        }
        if ((rc = qr_tok_ids_push(out, found)))
            goto fail;
        start = end;
    }
fail:
    qr_tok_buf_free(&sub);
    return rc;
}

/* ---- BPE ------------------------------------------------------------------------------- */

typedef struct {
    int32_t id;
    int32_t prev, next; /* symbol indices, -1 at the ends */
    uint32_t len;       /* bytes covered; 0 = merged away */
} bpe_sym;

typedef struct {
    int32_t rank, pos, merged;
    int32_t left, right; /* the pair when queued: a popped entry is current iff the symbols at
                            pos and its successor still have these ids (symbols only grow, so
                            this is the same test as HF's "pair still merges to `merged`") */
} bpe_merge;

/* Min-heap on (rank, pos): HF pops the lowest rank first, the leftmost on ties. */
static bool merge_less(const bpe_merge *a, const bpe_merge *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

/* Small words use the inline arrays; longer ones move to the heap (owned = true). */
#define BPE_INLINE 64

typedef struct { bpe_merge *v; size_t n, cap; bool owned; } bpe_heap;

static int heap_push(bpe_heap *h, bpe_merge m)
{
    if (h->n == h->cap) {
        size_t cap = h->cap * 2;
        bpe_merge *v = h->owned ? realloc(h->v, cap * sizeof *v) : malloc(cap * sizeof *v);
        if (!v)
            return qr_fail(QR_ENOMEM, "tokenizer: BPE queue");
        if (!h->owned)
            memcpy(v, h->v, h->n * sizeof *v);
        h->v = v;
        h->cap = cap;
        h->owned = true;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!merge_less(&m, &h->v[p]))
            break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = m;
    return 0;
}

static bpe_merge heap_pop(bpe_heap *h)
{
    bpe_merge top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, s = i;
        const bpe_merge *best = &last;
        if (l < h->n && merge_less(&h->v[l], best)) {
            s = l;
            best = &h->v[l];
        }
        if (r < h->n && merge_less(&h->v[r], best))
            s = r;
        if (s == i)
            break;
        h->v[i] = h->v[s];
        i = s;
    }
    if (h->n)
        h->v[i] = last;
    return top;
}

typedef struct { bpe_sym *v; size_t n, cap; bool owned; } bpe_syms;

static int sym_add(bpe_syms *s, int32_t id, uint32_t len)
{
    if (s->n == s->cap) {
        size_t cap = s->cap * 2;
        bpe_sym *v = s->owned ? realloc(s->v, cap * sizeof *v) : malloc(cap * sizeof *v);
        if (!v)
            return qr_fail(QR_ENOMEM, "tokenizer: BPE symbols");
        if (!s->owned)
            memcpy(v, s->v, s->n * sizeof *v);
        s->v = v;
        s->cap = cap;
        s->owned = true;
    }
    int32_t i = (int32_t)s->n;
    s->v[i] = (bpe_sym){id, i - 1, -1, len};
    if (i > 0)
        s->v[i - 1].next = i;
    s->n++;
    return 0;
}

/* Id of one character (with prefix/suffix decorations), -1 if not in the vocabulary. */
static int32_t char_id(const qr_tokenizer *t, const char *c, size_t clen, bool first, bool last,
                       qr_tok_buf *tmp, int *rc)
{
    const qr_tok_model *m = &t->model;
    bool pre = m->cont_prefix_len && !first, suf = m->eow_suffix_len && last;
    if (!pre && !suf) {
        if (clen <= 2) {
            uint32_t cp;
            qr_tok_utf8_next(c, clen, &cp);
            if (cp < 512)
                return t->vocab.cp_id[cp];
        }
        return qr_tok_vocab_get(t, c, clen);
    }
    tmp->n = 0;
    if ((pre && (*rc = qr_tok_buf_put(tmp, m->cont_prefix, m->cont_prefix_len))) ||
        (*rc = qr_tok_buf_put(tmp, c, clen)) ||
        (suf && (*rc = qr_tok_buf_put(tmp, m->eow_suffix, m->eow_suffix_len))))
        return -1;
    return qr_tok_vocab_get(t, tmp->p, tmp->n);
}

int qr_tok_bpe_word(const qr_tokenizer *t, const char *w, size_t len, qr_tok_ids *out)
{
    const qr_tok_model *m = &t->model;
    int rc = 0;
    if (len == 0)
        return 0;
    if (m->ignore_merges) {
        int32_t id = qr_tok_vocab_get(t, w, len);
        if (id >= 0)
            return qr_tok_ids_push(out, id);
    }
    bpe_sym sym_inline[BPE_INLINE];
    bpe_merge heap_inline[BPE_INLINE];
    bpe_syms syms = {sym_inline, 0, BPE_INLINE, false};
    bpe_heap heap = {heap_inline, 0, BPE_INLINE, false};
    qr_tok_buf tmp = {0};
    int32_t unk = -1;
    uint32_t unk_len = 0;
    bool have_unk = false;

    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t cl = (size_t)qr_tok_utf8_next(w + i, len - i, &cp);
        bool first = i == 0, last = i + cl == len;
        int32_t id = char_id(t, w + i, cl, first, last, &tmp, &rc);
        if (rc)
            goto fail;
        if (id >= 0) {
            if (have_unk) {
                if ((rc = sym_add(&syms, unk, unk_len)))
                    goto fail;
                have_unk = false;
            }
            if ((rc = sym_add(&syms, id, (uint32_t)cl)))
                goto fail;
            i += cl;
            continue;
        }
        if (m->byte_fallback) {
            /* The bytes of the decorated character, each as <0xXX>, if all exist. HF does
             * not flush a pending unk here; neither do we. */
            const char *s = w + i;
            size_t sl = cl;
            bool pre = m->cont_prefix_len && !first, suf = m->eow_suffix_len && last;
            if (pre || suf) {
                s = tmp.p;
                sl = tmp.n;
            }
            bool all = true;
            for (size_t k = 0; k < sl; k++)
                all = all && m->byte_fallback_id[(unsigned char)s[k]] >= 0;
            if (all) {
                for (size_t k = 0; k < sl; k++)
                    if ((rc = sym_add(&syms, m->byte_fallback_id[(unsigned char)s[k]], 1)))
                        goto fail;
                i += cl;
                continue;
            }
        }
        if (m->unk_id >= 0) {
            if (have_unk && m->fuse_unk) {
                unk_len += (uint32_t)cl;
            } else {
                if (have_unk && (rc = sym_add(&syms, unk, unk_len)))
                    goto fail;
                unk = m->unk_id;
                unk_len = (uint32_t)cl;
                have_unk = true;
            }
        }
        i += cl;
    }
    if (have_unk && (rc = sym_add(&syms, unk, unk_len)))
        goto fail;

    /* Merge by priority: O(n log n) in the number of characters. */
    for (size_t i = 0; i + 1 < syms.n; i++) {
        int32_t rank, merged;
        if (qr_tok_merge_get(&m->merges, syms.v[i].id, syms.v[i + 1].id, &rank, &merged) &&
            (rc = heap_push(&heap, (bpe_merge){rank, (int32_t)i, merged, syms.v[i].id, syms.v[i + 1].id})))
            goto fail;
    }
    while (heap.n) {
        bpe_merge top = heap_pop(&heap);
        bpe_sym *cur = &syms.v[top.pos];
        if (cur->len == 0 || cur->next < 0)
            continue;
        bpe_sym *right = &syms.v[cur->next];
        int32_t rank, merged;
        if (cur->id != top.left || right->id != top.right)
            continue;
        cur->id = top.merged;
        cur->len += right->len;
        cur->next = right->next;
        right->len = 0;
        if (cur->next >= 0)
            syms.v[cur->next].prev = top.pos;
        if (cur->prev >= 0 &&
            qr_tok_merge_get(&m->merges, syms.v[cur->prev].id, cur->id, &rank, &merged) &&
            (rc = heap_push(&heap, (bpe_merge){rank, cur->prev, merged, syms.v[cur->prev].id, cur->id})))
            goto fail;
        cur = &syms.v[top.pos];
        if (cur->next >= 0 &&
            qr_tok_merge_get(&m->merges, cur->id, syms.v[cur->next].id, &rank, &merged) &&
            (rc = heap_push(&heap, (bpe_merge){rank, top.pos, merged, cur->id, syms.v[cur->next].id})))
            goto fail;
    }
    for (size_t i = 0; i < syms.n; i++)
        if (syms.v[i].len && (rc = qr_tok_ids_push(out, syms.v[i].id)))
            goto fail;
fail:
    if (syms.owned)
        free(syms.v);
    if (heap.owned)
        free(heap.v);
    qr_tok_buf_free(&tmp);
    return rc;
}

/* ---- word cache -------------------------------------------------------------------------
 * Most pre-tokens of real text are frequent words, so their ids are cached. The cache is a
 * direct-mapped table of short words (a slot is overwritten by a colliding word) behind a
 * mutex that is only try-locked: a thread that finds it busy computes the word itself, so
 * threads never wait on each other. Caching cannot change results: every model is a pure
 * function of the word. */

#define CACHE_SLOTS 65536 /* power of two; 7 MiB */
#define CACHE_WORD 44
#define CACHE_IDS 14

typedef struct {
    uint64_t hash;   /* 0 = empty */
    uint8_t wlen, nids;
    char word[CACHE_WORD];
    int32_t ids[CACHE_IDS];
} cache_slot;

struct qr_tok_cache {
    pthread_mutex_t mu;
    cache_slot slot[CACHE_SLOTS];
};

int qr_tok_cache_create(qr_tokenizer *t)
{
    struct qr_tok_cache *c = calloc(1, sizeof *c);
    if (!c)
        return qr_fail(QR_ENOMEM, "tokenizer: word cache");
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c);
        return qr_fail(QR_EINTERNAL, "tokenizer: word cache mutex");
    }
    t->cache = c;
    return 0;
}

void qr_tok_cache_free(struct qr_tok_cache *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static int model_word_raw(const qr_tokenizer *t, const char *w, size_t len, qr_tok_ids *out)
{
    switch (t->model.type) {
    case QR_TOK_MODEL_WORDPIECE: return qr_tok_wordpiece_word(t, w, len, out);
    case QR_TOK_MODEL_BPE: return qr_tok_bpe_word(t, w, len, out);
    case QR_TOK_MODEL_WORDLEVEL: {
        int32_t id = qr_tok_vocab_get(t, w, len);
        return qr_tok_ids_push(out, id >= 0 ? id : t->model.unk_id);
    }
    case QR_TOK_MODEL_CUSTOM: return t->model.custom_encode(t, w, len, out);
    default: return qr_fail(QR_EINTERNAL, "%s: tokenizer has no model", t->source ? t->source : "tokenizer");
    }
}

static int model_word_cached(const qr_tokenizer *t, const char *w, size_t len, qr_tok_ids *out);

int qr_tok_model_word(const qr_tokenizer *t, const char *w, size_t len, qr_tok_ids *out)
{
    if (!t->model.split_metaspace || len <= CACHE_WORD)
        return model_word_cached(t, w, len, out);
    /* Cut before each U+2581 that follows another character (see tok_internal.h). */
    int rc = 0;
    size_t start = 0;
    for (size_t i = 3; i + 3 <= len && !rc; i++) {
        if (memcmp(w + i, "\xE2\x96\x81", 3) == 0 && memcmp(w + i - 3, "\xE2\x96\x81", 3) != 0) {
            rc = model_word_cached(t, w + start, i - start, out);
            start = i;
            i += 2;
        }
    }
    return rc ? rc : model_word_cached(t, w + start, len - start, out);
}

static int model_word_cached(const qr_tokenizer *t, const char *w, size_t len, qr_tok_ids *out)
{
    struct qr_tok_cache *c = t->cache;
    if (len > QR_TOK_MAX_WORD && (t->model.type == QR_TOK_MODEL_BPE || t->model.type == QR_TOK_MODEL_CUSTOM))
        return qr_fail(QR_ELIMIT, "%s: a %zu-byte word without pre-token boundaries exceeds the limit of %zu bytes",
                       t->source ? t->source : "tokenizer", len, QR_TOK_MAX_WORD);
    if (!c || len == 0 || len > CACHE_WORD)
        return model_word_raw(t, w, len, out);
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)w[i];
        h *= 1099511628211ull;
    }
    h |= 1;
    cache_slot *s = &c->slot[(h >> 17) & (CACHE_SLOTS - 1)];
    if (pthread_mutex_trylock(&c->mu) == 0) {
        if (s->hash == h && s->wlen == len && memcmp(s->word, w, len) == 0) {
            int32_t ids[CACHE_IDS];
            uint8_t n = s->nids;
            memcpy(ids, s->ids, n * sizeof *ids);
            pthread_mutex_unlock(&c->mu);
            int rc = 0;
            for (uint8_t i = 0; i < n && !rc; i++)
                rc = qr_tok_ids_push(out, ids[i]);
            return rc;
        }
        pthread_mutex_unlock(&c->mu);
    }
    size_t mark = out->n;
    int rc = model_word_raw(t, w, len, out);
    size_t n = out->n - mark;
    if (rc || n > CACHE_IDS || pthread_mutex_trylock(&c->mu) != 0)
        return rc;
    s->hash = h;
    s->wlen = (uint8_t)len;
    s->nids = (uint8_t)n;
    memcpy(s->word, w, len);
    memcpy(s->ids, out->v + mark, n * sizeof *out->v);
    pthread_mutex_unlock(&c->mu);
    return 0;
}
