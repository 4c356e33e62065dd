/* Invariants every chunking must satisfy, shared by the chunker tests:
 * exact spans inside the text, trimmed, in order; token counts equal to an
 * independent tokenization and within the limit; page and heading path of the
 * block where the chunk starts; never across pages or top-level headings; and
 * every non-space byte of every block covered by some chunk. Returns the
 * number of violations (each one printed). */
#ifndef QR_TEST_CHUNK_CHECK_H
#define QR_TEST_CHUNK_CHECK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/chunker.h"
#include "ingest/reader.h"
#include "runtime/tokenizer/tokenizer.h"

static bool cc_ws(char c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

/* Block holding byte off (blocks are in text order); n_blocks if none. */
static size_t cc_block_at(const qr_doc *d, size_t off)
{
    for (size_t i = 0; i < d->n_blocks; i++)
        if (off >= d->blocks[i].off && off < d->blocks[i].off + d->blocks[i].len) return i;
    return d->n_blocks;
}

static bool cc_top_heading(const qr_doc *d, size_t i)
{
    const qr_block *b = &d->blocks[i];
    return b->kind == QR_BLOCK_HEADING && strlen(b->heading) == b->len && !memcmp(b->heading, d->text + b->off, b->len);
}

static int check_chunks(const qr_doc *d, const qr_chunk *ch, size_t n, const qr_tokenizer *tok, int max_tokens,
                        const char *what)
{
    int bad = 0;
#define CC_FAIL(...)                                    \
    do {                                                \
        bad++;                                          \
        fprintf(stderr, "%s: chunk %zu: ", what, k);    \
        fprintf(stderr, __VA_ARGS__);                   \
        fputc('\n', stderr);                            \
    } while (0)
    char *covered = calloc(d->text_len + 1, 1);
    for (size_t k = 0; k < n; k++) {
        const qr_chunk *c = &ch[k];
        if (c->len == 0 || c->off + c->len > d->text_len) {
            CC_FAIL("span %zu+%zu outside text of %zu", c->off, c->len, d->text_len);
            continue;
        }
        const char *s = d->text + c->off;
        if (cc_ws(s[0]) || cc_ws(s[c->len - 1])) CC_FAIL("not trimmed");
        if (k && c->off < ch[k - 1].off) CC_FAIL("starts before the previous chunk");
        if (k && c->off + c->len <= ch[k - 1].off + ch[k - 1].len) CC_FAIL("ends before the previous chunk end");
        if (c->n_tokens > max_tokens) CC_FAIL("%d tokens over %d", c->n_tokens, max_tokens);
        if (tok) {
            int32_t *ids = NULL;
            size_t nid = 0;
            if (qr_tokenize_ex(tok, s, c->len, QR_TOK_ADD_SPECIAL | QR_TOK_SPECIAL_AS_TEXT, &ids, &nid))
                CC_FAIL("tokenize failed");
            else if ((size_t)c->n_tokens != nid)
                CC_FAIL("n_tokens %d but the tokenizer gives %zu", c->n_tokens, nid);
            free(ids);
        }
        size_t b0 = cc_block_at(d, c->off);
        if (b0 == d->n_blocks) {
            CC_FAIL("starts outside any block");
            continue;
        }
        if (c->block != b0) CC_FAIL("block %zu, starts in %zu", c->block, b0);
        if (c->page != d->blocks[b0].page) CC_FAIL("page %d, block page %d", c->page, d->blocks[b0].page);
        if (strcmp(c->heading, d->blocks[b0].heading)) CC_FAIL("heading [%s] vs [%s]", c->heading, d->blocks[b0].heading);
        size_t b1 = cc_block_at(d, c->off + c->len - 1);
        if (b1 == d->n_blocks) CC_FAIL("ends outside any block");
        for (size_t b = b0; b <= b1 && b < d->n_blocks; b++) {
            if (d->blocks[b].page != c->page) CC_FAIL("spans pages %d and %d", c->page, d->blocks[b].page);
            if (b > b0 && cc_top_heading(d, b)) CC_FAIL("crosses top-level heading at block %zu", b);
        }
        memset(covered + c->off, 1, c->len);
    }
    for (size_t i = 0; i < d->text_len; i++) {
        size_t k = i;
        if (!cc_ws(d->text[i]) && !covered[i]) {
            CC_FAIL("byte %zu not covered by any chunk", i);
            break;
        }
    }
    free(covered);
#undef CC_FAIL
    return bad;
}

#endif
