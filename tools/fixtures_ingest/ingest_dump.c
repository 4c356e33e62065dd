/* ingest_dump: runs the readers (and optionally the chunker) over files and
 * prints what they extract. Developer tool, not installed.
 *   ingest_dump [-b] [-c] [-t TOKENIZER_DIR] [-m MAX] [-o OVERLAP] FILE...
 *   -b  print every block;  -c  chunk and print chunks;  -s  summary only */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "ingest/chunker.h"
#include "ingest/reader.h"

int main(int argc, char **argv)
{
    int show_blocks = 0, show_chunks = 0, summary = 0, i = 1;
    const char *tokdir = NULL;
    qr_chunk_opts co;
    qr_chunk_opts_default(&co);
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "-b")) show_blocks = 1;
        else if (!strcmp(argv[i], "-c")) show_chunks = 1;
        else if (!strcmp(argv[i], "-s")) summary = 1;
        else if (!strcmp(argv[i], "-t") && i + 1 < argc) tokdir = argv[++i];
        else if (!strcmp(argv[i], "-m") && i + 1 < argc) co.max_tokens = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-o") && i + 1 < argc) co.overlap_tokens = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: ingest_dump [-b] [-c] [-s] [-t TOKDIR] [-m MAX] [-o OVERLAP] FILE...\n");
            return 2;
        }
    }
    qr_tokenizer *tok = NULL;
    if (tokdir && qr_tokenizer_load(tokdir, &tok)) {
        fprintf(stderr, "tokenizer: %s\n", qr_last_error());
        return 1;
    }
    qr_chunker *ck = NULL;
    if (qr_chunker_create(tok, &co, &ck)) {
        fprintf(stderr, "chunker: %s\n", qr_last_error());
        return 1;
    }
    size_t files = 0, skipped = 0, docs = 0, blocks = 0, chunks = 0, bytes = 0, warns = 0, pages = 0;
    for (; i < argc; i++) {
        qr_read_result *r;
        files++;
        if (qr_read_file(argv[i], NULL, &r)) {
            fprintf(stderr, "%s: error %s\n", argv[i], qr_last_error());
            continue;
        }
        if (r->skip) {
            skipped++;
            printf("SKIP %s [%s] %s\n", argv[i], qr_skip_name(r->skip), r->skip_reason);
        }
        for (size_t w = 0; w < r->n_warnings; w++) printf("WARN %s: %s\n", argv[i], r->warnings[w]);
        warns += r->n_warnings;
        for (size_t d = 0; d < r->n_docs; d++) {
            const qr_doc *doc = &r->docs[d];
            docs++;
            blocks += doc->n_blocks;
            bytes += doc->text_len;
            pages += (size_t)doc->n_pages;
            qr_chunk *ch = NULL;
            size_t nch = 0;
            if (qr_chunk_doc(ck, doc, &ch, &nch)) fprintf(stderr, "%s: chunk error %s\n", argv[i], qr_last_error());
            chunks += nch;
            if (!summary)
                printf("DOC %s [%s] title=\"%s\" pages=%d blocks=%zu bytes=%zu chunks=%zu%s%s\n", argv[i],
                       qr_format_name(doc->format), doc->title, doc->n_pages, doc->n_blocks, doc->text_len, nch,
                       doc->meta_json ? " meta=" : "", doc->meta_json ? doc->meta_json : "");
            if (show_blocks)
                for (size_t b = 0; b < doc->n_blocks; b++) {
                    const qr_block *bl = &doc->blocks[b];
                    printf("  B%zu %s p%d [%s] %.*s\n", b, qr_block_kind_name(bl->kind), bl->page, bl->heading,
                           (int)(bl->len > 160 ? 160 : bl->len), doc->text + bl->off);
                }
            if (show_chunks)
                for (size_t k = 0; k < nch; k++)
                    printf("  C%zu p%d tok=%d [%s] %zu+%zu: %.*s\n", k, ch[k].page, ch[k].n_tokens, ch[k].heading,
                           ch[k].off, ch[k].len, (int)(ch[k].len > 200 ? 200 : ch[k].len), doc->text + ch[k].off);
            free(ch);
        }
        qr_read_result_free(r);
    }
    printf("files=%zu skipped=%zu docs=%zu pages=%zu blocks=%zu bytes=%zu chunks=%zu warnings=%zu\n", files, skipped,
           docs, pages, blocks, bytes, chunks, warns);
    qr_chunker_destroy(ck);
    qr_tokenizer_free(tok);
    return 0;
}
