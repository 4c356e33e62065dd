/* Citation cleaning, whole text and streaming: see cite.h.
 *
 * The stream is a small state machine over bytes. Spaces and tabs are held
 * back (a citation removed after them takes them along); "[" opens a
 * candidate group that is held until "]" (then judged) or a byte that cannot
 * belong to a citation (then released as text). After a removed group the
 * space that preceded it is kept aside until the next byte shows whether it
 * is needed: a word character keeps it, whitespace, punctuation or the end
 * drop it, another "[" carries it over to that group. */
#include "generate/cite.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"

typedef struct {
    char *p;
    size_t n, cap;
} buf;

static int buf_add(buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return qr_fail(QR_ENOMEM, "cite: out of memory");
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

static int ints_add(int **a, size_t *n, int v)
{
    int *p = realloc(*a, (*n + 1) * sizeof *p);
    if (!p) return qr_fail(QR_ENOMEM, "cite: out of memory");
    p[(*n)++] = v;
    *a = p;
    return 0;
}

struct qr_cite_stream {
    size_t n_sources;
    buf out;      /* released this call */
    buf ws;       /* held spaces/tabs */
    buf grp;      /* held candidate group, starting with '[' */
    buf rws;      /* spaces before a removed group, pending the next byte */
    int after_removed;
    int done;
    qr_cite_report rep;
};

int qr_cite_stream_create(size_t n_sources, qr_cite_stream **out)
{
    if (!out) return qr_fail(QR_EINVAL, "qr_cite_stream_create: NULL argument");
    qr_cite_stream *s = calloc(1, sizeof *s);
    if (!s) return qr_fail(QR_ENOMEM, "cite: out of memory");
    s->n_sources = n_sources;
    *out = s;
    return 0;
}

void qr_cite_report_free(qr_cite_report *r)
{
    if (!r) return;
    free(r->cited);
    free(r->removed);
    memset(r, 0, sizeof *r);
}

void qr_cite_stream_free(qr_cite_stream *s)
{
    if (!s) return;
    free(s->out.p);
    free(s->ws.p);
    free(s->grp.p);
    free(s->rws.p);
    qr_cite_report_free(&s->rep);
    free(s);
}

static int may_continue_group(char c)
{
    return (c >= '0' && c <= '9') || c == ' ' || c == ',' || c == ';';
}

/* Parses a complete group "[...]": numbers into nums (at most cap); returns
 * the count, or -1 when it is not a citation. */
static int parse_group(const char *g, size_t n, long *nums, int cap)
{
    size_t i = 1;
    int k = 0;
    int want_num = 1;
    while (i < n - 1) {
        char c = g[i];
        if (c == ' ') {
            i++;
        } else if (c >= '0' && c <= '9') {
            if (!want_num || k == cap) return -1;
            long v = 0;
            size_t d = 0;
            while (i < n - 1 && g[i] >= '0' && g[i] <= '9') {
                if (++d > 6) return -1;
                v = v * 10 + (g[i] - '0');
                i++;
            }
            nums[k++] = v;
            want_num = 0;
        } else if (c == ',' || c == ';') {
            if (want_num) return -1;
            want_num = 1;
            i++;
        } else {
            return -1;
        }
    }
    return (k == 0 || want_num) ? -1 : k;
}

static int release_text(qr_cite_stream *s, const char *t, size_t n)
{
    int rc;
    if (s->ws.n) {
        if ((rc = buf_add(&s->out, s->ws.p, s->ws.n))) return rc;
        s->ws.n = 0;
    }
    return buf_add(&s->out, t, n);
}

static int judge_group(qr_cite_stream *s)
{
    long nums[QR_CITE_MAX_GROUP];
    int k = parse_group(s->grp.p, s->grp.n, nums, QR_CITE_MAX_GROUP);
    int rc = 0;
    if (k < 0) {
        rc = release_text(s, s->grp.p, s->grp.n);
        s->grp.n = 0;
        return rc;
    }
    int valid = 0;
    for (int i = 0; i < k; i++) {
        if (nums[i] >= 1 && (size_t)nums[i] <= s->n_sources) {
            valid++;
            int seen = 0;
            for (size_t j = 0; j < s->rep.n_cited; j++) seen |= s->rep.cited[j] == nums[i];
            if (!seen && (rc = ints_add(&s->rep.cited, &s->rep.n_cited, (int)nums[i]))) return rc;
        } else {
            if ((rc = ints_add(&s->rep.removed, &s->rep.n_removed, nums[i] > 999999 ? 999999 : (int)nums[i])))
                return rc;
        }
    }
    if (valid == k) {
        rc = release_text(s, s->grp.p, s->grp.n);
    } else if (valid > 0) {
        char tmp[QR_CITE_MAX_GROUP * 8 + 4];
        size_t t = 0;
        tmp[t++] = '[';
        for (int i = 0; i < k; i++) {
            if (nums[i] < 1 || (size_t)nums[i] > s->n_sources) continue;
            if (t > 1) {
                tmp[t++] = ',';
                tmp[t++] = ' ';
            }
            char d[8];
            int nd = 0;
            long v = nums[i];
            do d[nd++] = (char)('0' + v % 10), v /= 10;
            while (v);
            while (nd) tmp[t++] = d[--nd];
        }
        tmp[t++] = ']';
        rc = release_text(s, tmp, t);
    } else {
        /* Removed: the spaces before it wait for the next byte. */
        s->rws.n = 0;
        if (s->ws.n && (rc = buf_add(&s->rws, s->ws.p, s->ws.n))) return rc;
        s->ws.n = 0;
        s->after_removed = 1;
    }
    s->grp.n = 0;
    return rc;
}

static int feed(qr_cite_stream *s, char c)
{
    int rc;
    if (s->grp.n) {
        if (c == ']') {
            if ((rc = buf_add(&s->grp, &c, 1))) return rc;
            return judge_group(s);
        }
        if (may_continue_group(c) && s->grp.n < QR_CITE_MAX_GROUP) return buf_add(&s->grp, &c, 1);
        /* Not a citation: the held bytes are text; c is processed afresh. */
        rc = release_text(s, s->grp.p, s->grp.n);
        s->grp.n = 0;
        if (rc) return rc;
    }
    if (s->after_removed) {
        s->after_removed = 0;
        if (c == '[') {
            if (s->rws.n && (rc = buf_add(&s->ws, s->rws.p, s->rws.n))) return rc;
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || strchr(".,;:!?)]}", c)) {
            /* drop the spaces before the removed group */
        } else if (s->rws.n && (rc = buf_add(&s->out, s->rws.p, s->rws.n))) {
            return rc;
        }
        s->rws.n = 0;
    }
    if (c == ' ' || c == '\t') return buf_add(&s->ws, &c, 1);
    if (c == '[') return buf_add(&s->grp, &c, 1);
    return release_text(s, &c, 1);
}

int qr_cite_stream_push(qr_cite_stream *s, const char *text, size_t len, const char **piece, size_t *piece_len)
{
    if (!s || (!text && len) || !piece || !piece_len) return qr_fail(QR_EINVAL, "qr_cite_stream_push: NULL argument");
    if (s->done) return qr_fail(QR_EINVAL, "qr_cite_stream_push: stream already finished");
    s->out.n = 0;
    if (buf_add(&s->out, "", 0)) return QR_ENOMEM;
    for (size_t i = 0; i < len; i++) {
        int rc = feed(s, text[i]);
        if (rc) return rc;
    }
    *piece = s->out.p;
    *piece_len = s->out.n;
    return 0;
}

int qr_cite_stream_finish(qr_cite_stream *s, const char **piece, size_t *piece_len)
{
    if (!s || !piece || !piece_len) return qr_fail(QR_EINVAL, "qr_cite_stream_finish: NULL argument");
    s->out.n = 0;
    int rc = buf_add(&s->out, "", 0);
    if (!rc && s->grp.n) {
        rc = release_text(s, s->grp.p, s->grp.n);
        s->grp.n = 0;
    }
    if (!rc && s->ws.n) rc = release_text(s, "", 0);
    s->rws.n = 0;
    s->after_removed = 0;
    s->done = 1;
    if (rc) return rc;
    *piece = s->out.p;
    *piece_len = s->out.n;
    return 0;
}

int qr_cite_stream_report(const qr_cite_stream *s, qr_cite_report *out)
{
    if (!s || !out) return qr_fail(QR_EINVAL, "qr_cite_stream_report: NULL argument");
    qr_cite_report r = {0};
    if (s->rep.n_cited && !(r.cited = malloc(s->rep.n_cited * sizeof *r.cited))) goto oom;
    if (s->rep.n_removed && !(r.removed = malloc(s->rep.n_removed * sizeof *r.removed))) goto oom;
    if (s->rep.n_cited) memcpy(r.cited, s->rep.cited, s->rep.n_cited * sizeof *r.cited);
    if (s->rep.n_removed) memcpy(r.removed, s->rep.removed, s->rep.n_removed * sizeof *r.removed);
    r.n_cited = s->rep.n_cited;
    r.n_removed = s->rep.n_removed;
    *out = r;
    return 0;
oom:
    qr_cite_report_free(&r);
    return qr_fail(QR_ENOMEM, "cite: out of memory");
}

int qr_cite_clean(const char *text, size_t len, size_t n_sources, char **out, qr_cite_report *report)
{
    if ((!text && len) || !out) return qr_fail(QR_EINVAL, "qr_cite_clean: NULL argument");
    qr_cite_stream *s = NULL;
    buf all = {0};
    const char *p;
    size_t pn;
    int rc = qr_cite_stream_create(n_sources, &s);
    if (rc) return rc;
    if ((rc = qr_cite_stream_push(s, text, len, &p, &pn)) || (rc = buf_add(&all, p, pn)) ||
        (rc = qr_cite_stream_finish(s, &p, &pn)) || (rc = buf_add(&all, p, pn)))
        goto fail;
    if (report && (rc = qr_cite_stream_report(s, report))) goto fail;
    *out = all.p;
    all.p = NULL;
fail:
    free(all.p);
    qr_cite_stream_free(s);
    return rc;
}
