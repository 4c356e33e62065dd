/* A retrieved passage as JSON: the one shape shared by `quire search --json`
 * and the HTTP service (POST /v1/search), so both print identical passages. */
#include <jansson.h>

#include "retrieve/retrieve.h"

json_t *qr_passage_to_json(const qr_passage *p, int rank)
{
    json_t *j = json_object();
    if (!j)
        return NULL;
    int bad = 0;
    bad |= json_object_set_new(j, "rank", json_integer(rank));
    bad |= json_object_set_new(j, "score", json_real(p->score));
    bad |= json_object_set_new(j, "fused", json_real(p->fused));
    bad |= json_object_set_new(j, "dense", p->dense_rank ? json_real(p->dense) : json_null());
    bad |= json_object_set_new(j, "dense_rank", p->dense_rank ? json_integer(p->dense_rank) : json_null());
    bad |= json_object_set_new(j, "bm25", p->bm25_rank ? json_real(p->bm25) : json_null());
    bad |= json_object_set_new(j, "bm25_rank", p->bm25_rank ? json_integer(p->bm25_rank) : json_null());
    bad |= json_object_set_new(j, "rerank", p->reranked ? json_real(p->rerank) : json_null());
    bad |= json_object_set_new(j, "chunk_id", json_integer((json_int_t)p->chunk_id));
    bad |= json_object_set_new(j, "doc_id", json_integer((json_int_t)p->doc_id));
    bad |= json_object_set_new(j, "path", json_string(p->path ? p->path : ""));
    bad |= json_object_set_new(j, "title", json_string(p->title ? p->title : ""));
    bad |= json_object_set_new(j, "page", p->page ? json_integer(p->page) : json_null());
    bad |= json_object_set_new(j, "heading", json_string(p->heading ? p->heading : ""));
    bad |= json_object_set_new(j, "byte_start", json_integer((json_int_t)p->byte_start));
    bad |= json_object_set_new(j, "byte_end", json_integer((json_int_t)p->byte_end));
    bad |= json_object_set_new(j, "text", json_string(p->text ? p->text : ""));
    if (bad) {
        json_decref(j);
        return NULL;
    }
    return j;
}

json_t *qr_results_to_json(const qr_results *res, const char *query, int k, bool dense, bool reranked)
{
    json_t *j = json_object(), *a = json_array();
    int bad = !j || !a;
    for (size_t i = 0; !bad && i < res->n; i++)
        bad |= json_array_append_new(a, qr_passage_to_json(&res->items[i], (int)i + 1));
    if (!bad) {
        json_t *qj = json_string(query); /* NULL for invalid UTF-8 (a command-line query): null */
        bad |= json_object_set_new(j, "query", qj ? qj : json_null());
        bad |= json_object_set_new(j, "k", json_integer(k));
        bad |= json_object_set_new(j, "dense", json_boolean(dense));
        bad |= json_object_set_new(j, "reranked", json_boolean(reranked));
        bad |= json_object_set_new(j, "candidates_dense", json_integer((json_int_t)res->n_dense));
        bad |= json_object_set_new(j, "candidates_bm25", json_integer((json_int_t)res->n_bm25));
        bad |= json_object_set_new(j, "seconds", json_real(res->seconds));
        bad |= json_object_set_new(j, "results", a);
        a = NULL;
    }
    json_decref(a);
    if (bad) {
        json_decref(j);
        return NULL;
    }
    return j;
}
