/* Ingest pipeline (see pipeline.h for the policy). */
#include "ingest/pipeline.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "index/bm25.h"
#include "index/store.h"
#include "ingest/filter.h"
#include "runtime/models/model.h"

#define FILES_DB "ingest_files"
#define WINDOW 64 /* files read ahead of the committing thread */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

const char *qr_ingest_status_name(qr_ingest_status s)
{
    static const char *n[] = {"added", "updated", "unchanged", "removed", "skipped"};
    return (unsigned)s < 5 ? n[s] : "?";
}

void qr_ingest_opts_default(qr_ingest_opts *o)
{
    memset(o, 0, sizeof *o);
    qr_chunk_opts_default(&o->chunk);
    qr_reader_opts_default(&o->reader);
    o->jobs = 4;
    o->batch = 32;
    o->commit_chunks = 4096;
    o->default_excludes = true;
}

void qr_ingest_report_free(qr_ingest_report *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_files; i++) {
        free(r->files[i].path);
        free(r->files[i].reason);
        free(r->files[i].doc_ids);
    }
    free(r->files);
    memset(r, 0, sizeof *r);
}

void qr_ingest_hash(const void *data, size_t len, char *buf, size_t buflen)
{
    uint64_t h = 1469598103934665603ull;
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    snprintf(buf, buflen, "fnv1a64:%016llx", (unsigned long long)h);
}

int qr_ingest_shard_of(const char *rel_path, int count)
{
    if (count <= 1)
        return 0;
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)rel_path; *p; p++) {
        h ^= *p;
        h *= 1099511628211ull;
    }
    /* splitmix64 finaliser: FNV's low bits alone vary little between names
     * that differ in their last character (doc1, doc2, ...) */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return (int)(h % (uint64_t)count);
}

/* ---------------------------------------------------------------- report */

static int report_add(qr_ingest_report *r, const char *path, qr_ingest_status st, const char *reason,
                      qr_ingest_file **out)
{
    if ((r->n_files & (r->n_files + 1)) == 0 || r->n_files == 0) {
        size_t cap = r->n_files ? (r->n_files + 1) * 2 : 16;
        qr_ingest_file *f = realloc(r->files, cap * sizeof *f);
        if (!f)
            return qr_fail(QR_ENOMEM, "ingest: report");
        r->files = f;
    }
    qr_ingest_file *f = &r->files[r->n_files];
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    f->reason = reason ? strdup(reason) : NULL;
    if (!f->path || (reason && !f->reason)) {
        free(f->path);
        free(f->reason);
        return qr_fail(QR_ENOMEM, "ingest: report");
    }
    f->status = st;
    r->n_files++;
    switch (st) {
    case QR_INGEST_ADDED: r->added++; break;
    case QR_INGEST_UPDATED: r->updated++; break;
    case QR_INGEST_UNCHANGED: r->unchanged++; break;
    case QR_INGEST_REMOVED: r->removed++; break;
    case QR_INGEST_SKIPPED: r->skipped++; break;
    }
    if (out)
        *out = f;
    return 0;
}

/* ---------------------------------------------------------------- walk */

typedef struct {
    char *path;
    uint64_t size;
    int64_t mtime_ns;
    int skip;           /* 1: skipped at walk time (reason set) */
    size_t rel;         /* offset of the path below its walk root (sharding) */
    char reason[160];
    /* previous record */
    bool have_rec;
    uint64_t rec_size;
    int64_t rec_mtime;
    char rec_hash[32];
} walk_file;

typedef struct {
    walk_file *f;
    size_t n, cap;
    dev_t *vdev;
    ino_t *vino;
    size_t nv, capv;
    bool hidden;
    size_t max_bytes;
    const char *root;   /* the walk root being walked: relative paths start below it */
    size_t root_len;
    size_t hidden_skipped; /* hidden entries passed over (no --hidden) */
    const volatile sig_atomic_t *cancel; /* stop walking when set */
    bool canceled;
    qr_path_filter filter;          /* --include / --exclude / default excludes */
    size_t excl_files, excl_dirs;   /* entries the filter left out */
} walker;

static bool canceled(const volatile sig_atomic_t *cancel)
{
    return cancel && *cancel;
}

static int walk_push(walker *w, const char *path, const struct stat *st, const char *skip)
{
    for (size_t i = 0; i < w->n; i++) /* same file named twice */
        if (w->n < 4096 && strcmp(w->f[i].path, path) == 0)
            return 0;
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        walk_file *f = realloc(w->f, cap * sizeof *f);
        if (!f)
            return qr_fail(QR_ENOMEM, "ingest: walk");
        w->f = f;
        w->cap = cap;
    }
    walk_file *f = &w->f[w->n];
    memset(f, 0, sizeof *f);
    if (!(f->path = strdup(path)))
        return qr_fail(QR_ENOMEM, "ingest: walk");
    if (w->root && strncmp(path, w->root, w->root_len) == 0) {
        f->rel = w->root_len;
        while (path[f->rel] == '/')
            f->rel++;
    }
    if (st) {
        f->size = (uint64_t)st->st_size;
        f->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    }
    if (skip) {
        f->skip = 1;
        snprintf(f->reason, sizeof f->reason, "%s", skip);
    } else if (strlen(path) + 16 > QR_STORE_MAX_PATH) {
        f->skip = 1;
        snprintf(f->reason, sizeof f->reason, "unreadable: path longer than %d bytes", QR_STORE_MAX_PATH - 16);
    } else if (st && (uint64_t)st->st_size > w->max_bytes) {
        f->skip = 1;
        snprintf(f->reason, sizeof f->reason, "too-large: %llu bytes (limit %zu)",
                 (unsigned long long)st->st_size, w->max_bytes);
    }
    w->n++;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The filter's verdict (ingest/filter.h) on an entry found below the walk root. */
static bool walk_excluded(walker *w, const char *path, bool is_dir)
{
    const char *rel = path + w->root_len;
    while (*rel == '/')
        rel++;
    const char *why = qr_filter_excludes(&w->filter, rel, path, is_dir);
    if (!why)
        return false;
    if (is_dir)
        w->excl_dirs++;
    else
        w->excl_files++;
    QR_DEBUG("ingest: %s: excluded (%s)", path, why);
    return true;
}

static int walk_dir(walker *w, const char *dir, const struct stat *dst, int depth)
{
    for (size_t i = 0; i < w->nv; i++)
        if (w->vdev[i] == dst->st_dev && w->vino[i] == dst->st_ino)
            return 0; /* already walked: a link loop or a second name */
    if (w->nv == w->capv) {
        size_t cap = w->capv ? w->capv * 2 : 32;
        dev_t *d = realloc(w->vdev, cap * sizeof *d);
        if (d)
            w->vdev = d;
        ino_t *n = realloc(w->vino, cap * sizeof *n);
        if (n)
            w->vino = n;
        if (!d || !n)
            return qr_fail(QR_ENOMEM, "ingest: walk");
        w->capv = cap;
    }
    w->vdev[w->nv] = dst->st_dev;
    w->vino[w->nv++] = dst->st_ino;
    if (depth > 64) {
        QR_WARN("ingest: %s: deeper than 64 directories, not walked", dir);
        return 0;
    }
    DIR *d = opendir(dir);
    if (!d)
        return walk_push(w, dir, NULL, "unreadable: cannot open directory");
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' && (!w->hidden || !strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))) {
            w->hidden_skipped += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) {
                rc = qr_fail(QR_ENOMEM, "ingest: walk");
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = qr_fail(QR_ENOMEM, "ingest: walk");
            break;
        }
        n++;
    }
    closedir(d);
    if (!rc && n) /* an empty directory: names is NULL, which qsort may not take */
        qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && !rc && !w->canceled; i++) {
        char p[PATH_MAX];
        struct stat st;
        if (canceled(w->cancel)) { /* a huge tree can take minutes to walk */
            w->canceled = true;
            break;
        }
        snprintf(p, sizeof p, "%s/%s", strcmp(dir, "/") ? dir : "", names[i]);
        if (stat(p, &st) != 0) {
            rc = walk_push(w, p, NULL, "unreadable: broken link or vanished");
        } else if (S_ISDIR(st.st_mode)) {
            if (!walk_excluded(w, p, true))
                rc = walk_dir(w, p, &st, depth + 1);
        } else if (S_ISREG(st.st_mode)) {
            if (!walk_excluded(w, p, false))
                rc = walk_push(w, p, &st, access(p, R_OK) ? "unreadable: permission denied" : NULL);
        } /* sockets, fifos, devices: ignored */
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

static int walk_root(walker *w, const char *arg)
{
    char real[PATH_MAX];
    struct stat st;
    if (!realpath(arg, real) || stat(real, &st) != 0) {
        /* relative to where the argument itself points (its own name) */
        const char *slash = strrchr(arg, '/');
        w->root = arg;
        w->root_len = slash ? (size_t)(slash - arg) : 0;
        return walk_push(w, arg, NULL, "unreadable: no such file or directory");
    }
    w->root = real;
    if (S_ISDIR(st.st_mode)) {
        w->root_len = strlen(real);
        size_t n0 = w->n, h0 = w->hidden_skipped, v0 = w->nv, x0 = w->excl_files + w->excl_dirs;
        int rc = walk_dir(w, real, &st, 0);
        /* "0 documents" alone does not say which PATH was empty (issue 13); a
         * directory named twice (or below another PATH) is walked once, not empty */
        if (!rc && !w->canceled && w->n == n0 && w->nv > v0) {
            if (w->hidden_skipped > h0)
                QR_WARN("ingest: %s: no files to ingest (%zu hidden entr%s passed over; --hidden reads them)",
                        arg, w->hidden_skipped - h0, w->hidden_skipped - h0 == 1 ? "y" : "ies");
            else if (w->excl_files + w->excl_dirs > x0)
                QR_WARN("ingest: %s: no files to ingest (%zu entr%s excluded by --include/--exclude or the default "
                        "excludes; --log-level debug lists them)",
                        arg, w->excl_files + w->excl_dirs - x0, w->excl_files + w->excl_dirs - x0 == 1 ? "y" : "ies");
            else
                QR_WARN("ingest: %s: no files to ingest (an empty directory)", arg);
        }
        return rc;
    }
    w->root_len = (size_t)(strrchr(real, '/') - real); /* a file: its base name */
    if (!S_ISREG(st.st_mode))
        return walk_push(w, real, NULL, "unreadable: not a regular file");
    return walk_push(w, real, &st, access(real, R_OK) ? "unreadable: permission denied" : NULL);
}

/* Keeps the files of shard index of count (see pipeline.h, Sharding); returns how many went. */
static size_t walk_shard(walker *w, int index, int count)
{
    size_t kept = 0, other = 0;
    for (size_t i = 0; i < w->n; i++) {
        if (qr_ingest_shard_of(w->f[i].path + w->f[i].rel, count) == index) {
            w->f[kept++] = w->f[i];
        } else {
            free(w->f[i].path);
            other++;
        }
    }
    w->n = kept;
    return other;
}

static void walker_free(walker *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->f[i].path);
    free(w->f);
    free(w->vdev);
    free(w->vino);
}

/* ---------------------------------------------------------------- file records */

typedef struct {
    uint64_t size;
    int64_t mtime_ns;
    uint32_t n_docs;
    char hash[32];
} file_rec;

static int rec_get(MDB_txn *txn, MDB_dbi dbi, const char *path, file_rec *r)
{
    MDB_val k = {strlen(path), (void *)path}, v;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc == MDB_NOTFOUND)
        return QR_ENOTFOUND;
    if (rc)
        return qr_fail(QR_EIO, "ingest: %s: %s", FILES_DB, mdb_strerror(rc));
    if (v.mv_size != sizeof *r)
        return qr_fail(QR_EFORMAT, "ingest: %s: record of %s has %zu bytes", FILES_DB, path, v.mv_size);
    memcpy(r, v.mv_data, sizeof *r);
    r->hash[sizeof r->hash - 1] = '\0';
    return 0;
}

static int rec_put(MDB_txn *txn, MDB_dbi dbi, const char *path, const file_rec *r)
{
    MDB_val k = {strlen(path), (void *)path}, v = {sizeof *r, (void *)r};
    int rc = mdb_put(txn, dbi, &k, &v, 0);
    if (rc == MDB_MAP_FULL)
        return qr_fail(QR_ELIMIT, "ingest: LMDB map full");
    return rc ? qr_fail(QR_EIO, "ingest: %s: %s", FILES_DB, mdb_strerror(rc)) : 0;
}

/* ---------------------------------------------------------------- per-file work */

typedef struct {
    int state;           /* 0 pending, 1 done */
    int kind;            /* 0 unchanged, 1 touch (record only), 2 write, 3 skip */
    char reason[256];
    qr_read_result *rr;
    qr_chunk **chunks;   /* per doc */
    size_t *n_chunks;
    size_t total_chunks;
    char hash[32];
    float *vecs;         /* (total_chunks, dim) */
    const char *format;
    uint64_t bytes;
    uint64_t *doc_ids;   /* written: the store id of each doc (moved to the report) */
} file_out;

typedef struct {
    walker *w;
    file_out *out;
    const qr_chunker *chunker;
    const qr_reader_opts *ropts;
    pthread_mutex_t mu;
    pthread_cond_t cv_done, cv_room;
    size_t next, consumed;
    bool stop;
} work_q;

static void file_out_clear(file_out *o)
{
    if (o->chunks)
        for (size_t d = 0; o->rr && d < o->rr->n_docs; d++)
            free(o->chunks[d]);
    free(o->chunks);
    free(o->n_chunks);
    free(o->vecs);
    free(o->doc_ids);
    o->doc_ids = NULL;
    qr_read_result_free(o->rr);
    o->chunks = NULL;
    o->n_chunks = NULL;
    o->vecs = NULL;
    o->rr = NULL;
}

static int read_whole(const char *path, uint64_t max, char **buf, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size > max) {
        close(fd);
        return -1;
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *b = malloc(cap);
    if (!b) {
        close(fd);
        return -1;
    }
    for (;;) {
        if (n == cap) {
            if (cap > max + 1) { /* grew while reading */
                free(b);
                close(fd);
                return -1;
            }
            char *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                close(fd);
                return -1;
            }
            b = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, b + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(b);
            close(fd);
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    *buf = b;
    *len = n;
    return 0;
}

static int process_file(work_q *q, size_t i)
{
    walk_file *f = &q->w->f[i];
    file_out *o = &q->out[i];
    if (f->skip) {
        o->kind = 3;
        snprintf(o->reason, sizeof o->reason, "%s", f->reason);
        return 0;
    }
    if (f->have_rec && f->rec_size == f->size && f->rec_mtime == f->mtime_ns) {
        o->kind = 0;
        return 0;
    }
    char *buf = NULL;
    size_t len = 0;
    if (read_whole(f->path, q->ropts->max_file_bytes, &buf, &len) != 0) {
        o->kind = 3;
        snprintf(o->reason, sizeof o->reason, "unreadable: %s", strerror(errno ? errno : EIO));
        return 0;
    }
    o->bytes = len;
    qr_ingest_hash(buf, len, o->hash, sizeof o->hash);
    if (f->have_rec && strcmp(o->hash, f->rec_hash) == 0) {
        o->kind = 1;
        free(buf);
        return 0;
    }
    int rc = qr_read_memory(f->path, buf, len, q->ropts, &o->rr);
    free(buf);
    if (rc)
        return rc;
    o->format = qr_format_name(o->rr->format);
    if (o->rr->skip != QR_SKIP_NONE) {
        o->kind = 3;
        snprintf(o->reason, sizeof o->reason, "%s: %s", qr_skip_name(o->rr->skip),
                 o->rr->skip_reason ? o->rr->skip_reason : "");
        return 0;
    }
    o->kind = 2;
    size_t nd = o->rr->n_docs;
    o->chunks = calloc(nd ? nd : 1, sizeof *o->chunks);
    o->n_chunks = calloc(nd ? nd : 1, sizeof *o->n_chunks);
    if (!o->chunks || !o->n_chunks)
        return qr_fail(QR_ENOMEM, "ingest: %s: chunks", f->path);
    for (size_t d = 0; d < nd; d++) {
        if ((rc = qr_chunk_doc(q->chunker, &o->rr->docs[d], &o->chunks[d], &o->n_chunks[d])))
            return rc;
        o->total_chunks += o->n_chunks[d];
    }
    return 0;
}

static void *worker(void *arg)
{
    work_q *q = arg;
    for (;;) {
        pthread_mutex_lock(&q->mu);
        while (!q->stop && q->next < q->w->n && q->next >= q->consumed + WINDOW)
            pthread_cond_wait(&q->cv_room, &q->mu);
        if (q->stop || q->next >= q->w->n) {
            pthread_mutex_unlock(&q->mu);
            return NULL;
        }
        size_t i = q->next++;
        pthread_mutex_unlock(&q->mu);
        int rc = process_file(q, i);
        if (rc) { /* allocation failure: report as a skip so the run goes on */
            file_out_clear(&q->out[i]);
            q->out[i].kind = 3;
            snprintf(q->out[i].reason, sizeof q->out[i].reason, "error: %s", qr_last_error());
        }
        pthread_mutex_lock(&q->mu);
        q->out[i].state = 1;
        pthread_cond_broadcast(&q->cv_done);
        pthread_mutex_unlock(&q->mu);
    }
}

/* ---------------------------------------------------------------- store writes */

typedef struct {
    qr_store *s;
    qr_bm25 *bm;
    MDB_dbi files_dbi;
    bool have_dbi;
} ctx;

static int open_dbs(ctx *c, qr_store_txn *t)
{
    MDB_txn *txn = qr_store_txn_mdb(t);
    int rc;
    if (!c->have_dbi) {
        if ((rc = mdb_dbi_open(txn, FILES_DB, MDB_CREATE, &c->files_dbi)))
            return qr_fail(QR_EIO, "ingest: open %s: %s", FILES_DB, mdb_strerror(rc));
        c->have_dbi = true;
    }
    if (!c->bm && (rc = qr_bm25_open(txn, NULL, &c->bm)))
        return rc;
    return 0;
}

typedef struct {
    uint64_t *ids;
    size_t n, cap;
} id_list;

static int collect_chunk(const qr_store_chunk *ch, void *user)
{
    id_list *l = user;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        uint64_t *n = realloc(l->ids, cap * sizeof *n);
        if (!n)
            return QR_ENOMEM;
        l->ids = n;
        l->cap = cap;
    }
    l->ids[l->n++] = ch->id;
    return 0;
}

/* Deletes one document with its BM25 postings. */
static int delete_doc(ctx *c, qr_store_txn *t, uint64_t doc_id)
{
    id_list l = {0};
    int rc = qr_store_doc_chunks(t, doc_id, collect_chunk, &l);
    for (size_t i = 0; i < l.n && !rc; i++) {
        rc = qr_bm25_remove(c->bm, qr_store_txn_mdb(t), l.ids[i]);
        if (rc == QR_ENOTFOUND)
            rc = 0;
    }
    free(l.ids);
    if (rc == QR_ENOMEM)
        return qr_fail(QR_ENOMEM, "ingest: chunk list");
    return rc ? rc : qr_store_delete_doc(t, doc_id);
}

/* Deletes every document of file path: "path" itself and "path#L<n>" records.
 * Uses the store's documented "paths" database for the prefix scan. */
static int delete_file_docs(ctx *c, qr_store_txn *t, const char *path, size_t *n_deleted)
{
    MDB_txn *txn = qr_store_txn_mdb(t);
    MDB_dbi paths;
    int rc = mdb_dbi_open(txn, "paths", 0, &paths);
    if (rc)
        return qr_fail(QR_EIO, "ingest: store paths database: %s", mdb_strerror(rc));
    id_list l = {0};
    size_t plen = strlen(path);
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, paths, &cur)))
        return qr_fail(QR_EIO, "ingest: cursor: %s", mdb_strerror(rc));
    MDB_val k = {plen, (void *)path}, v;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (mrc == 0 && k.mv_size >= plen && memcmp(k.mv_data, path, plen) == 0) {
        const char *kd = k.mv_data;
        bool mine = k.mv_size == plen || (k.mv_size > plen + 2 && kd[plen] == '#' && kd[plen + 1] == 'L');
        if (mine && v.mv_size == 8) {
            uint64_t id;
            memcpy(&id, v.mv_data, 8);
            qr_store_chunk dummy = {.id = id};
            if (collect_chunk(&dummy, &l)) {
                mdb_cursor_close(cur);
                free(l.ids);
                return qr_fail(QR_ENOMEM, "ingest: doc list");
            }
        }
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    rc = 0;
    for (size_t i = 0; i < l.n && !rc; i++)
        rc = delete_doc(c, t, l.ids[i]);
    if (n_deleted)
        *n_deleted = l.n;
    free(l.ids);
    return rc;
}

static int write_file(ctx *c, qr_store_txn *t, walk_file *f, file_out *o, int dim)
{
    int rc = delete_file_docs(c, t, f->path, NULL);
    if (rc)
        return rc;
    qr_store_chunk *sc = NULL;
    size_t cap = 0, vec_off = 0;
    /* (a transaction retried after MDB_MAP_FULL writes the file again: same size) */
    if (!o->doc_ids && !(o->doc_ids = calloc(o->rr->n_docs ? o->rr->n_docs : 1, sizeof *o->doc_ids)))
        return qr_fail(QR_ENOMEM, "ingest: doc ids");
    for (size_t d = 0; d < o->rr->n_docs && !rc; d++) {
        const qr_doc *doc = &o->rr->docs[d];
        size_t n = o->n_chunks[d];
        if (n > cap) {
            qr_store_chunk *nc = realloc(sc, n * sizeof *nc);
            if (!nc) {
                rc = qr_fail(QR_ENOMEM, "ingest: chunks");
                break;
            }
            sc = nc;
            cap = n;
        }
        for (size_t i = 0; i < n; i++) {
            const qr_chunk *ch = &o->chunks[d][i];
            sc[i] = (qr_store_chunk){.text = doc->text + ch->off, .text_len = ch->len, .byte_start = ch->off,
                                     .byte_end = ch->off + ch->len, .page = ch->page, .heading = ch->heading,
                                     .ordinal = (uint32_t)i};
        }
        char name[QR_STORE_MAX_PATH + 1];
        if (doc->line_no > 0 || o->rr->format == QR_FMT_JSONL)
            snprintf(name, sizeof name, "%s#L%zu", f->path, doc->line_no);
        else
            snprintf(name, sizeof name, "%s", f->path);
        qr_store_doc sd = {.path = name, .hash = o->hash, .mtime_ns = f->mtime_ns, .size = o->bytes,
                           .title = doc->title, .format = qr_format_name(doc->format),
                           .meta_json = doc->meta_json};
        uint64_t first = 0;
        rc = qr_store_put_doc(t, &sd, sc, n, dim ? o->vecs + vec_off * (size_t)dim : NULL, &o->doc_ids[d],
                             &first);
        for (size_t i = 0; i < n && !rc; i++)
            rc = qr_bm25_add_chunk(c->bm, qr_store_txn_mdb(t), first + i, name, doc->title, sc[i].heading, sc[i].text,
                                   sc[i].text_len);
        vec_off += n;
    }
    free(sc);
    if (rc)
        return rc;
    file_rec r = {.size = f->size, .mtime_ns = f->mtime_ns, .n_docs = (uint32_t)o->rr->n_docs};
    snprintf(r.hash, sizeof r.hash, "%s", o->hash);
    return rec_put(qr_store_txn_mdb(t), c->files_dbi, f->path, &r);
}

/* ---------------------------------------------------------------- embedding */

typedef struct {
    const char *text;
    size_t len;
    float *dst;
} emb_item;

static int cmp_len(const void *a, const void *b)
{
    const emb_item *x = a, *y = b;
    return x->len < y->len ? -1 : x->len > y->len;
}

/* Progress and stopping while a commit batch is embedded (qr_ingest_run's state). */
typedef struct {
    const qr_ingest_opts *o;
    double t0;
    size_t files_done, files_total, chunks_done; /* committed so far */
    int stop;
} run_progress;

/* Calls the progress callback; sets p->stop when it or opts.cancel asks to stop. */
static void emit_progress(run_progress *p, size_t files_done, size_t chunks, const char *cur)
{
    if (canceled(p->o->cancel))
        p->stop = 1;
    if (!p->o->progress)
        return;
    qr_ingest_progress g = {files_done, p->files_total, chunks, now_s() - p->t0, cur};
    if (p->o->progress(&g, p->o->progress_user))
        p->stop = 1;
}

/* Embeds every chunk of files [a, b) into their vecs, in length-sorted
 * batches; QR_ECANCELED (no error message) when asked to stop between batches. */
static int embed_files(qr_model *m, int batch, walker *w, file_out *out, size_t a, size_t b, int dim,
                       run_progress *prog)
{
    size_t total = 0;
    for (size_t i = a; i < b; i++)
        if (out[i].kind == 2)
            total += out[i].total_chunks;
    if (!total)
        return 0;
    emb_item *items = malloc(total * sizeof *items);
    const char **texts = malloc((size_t)batch * sizeof *texts);
    size_t *lens = malloc((size_t)batch * sizeof *lens);
    float *tmp = malloc((size_t)batch * (size_t)dim * sizeof *tmp);
    int rc = 0;
    if (!items || !texts || !lens || !tmp) {
        rc = qr_fail(QR_ENOMEM, "ingest: embedding batch");
        goto fail;
    }
    size_t k = 0;
    for (size_t i = a; i < b && !rc; i++) {
        file_out *o = &out[i];
        if (o->kind != 2 || !o->total_chunks)
            continue;
        if (!(o->vecs = malloc(o->total_chunks * (size_t)dim * sizeof *o->vecs))) {
            rc = qr_fail(QR_ENOMEM, "ingest: %s: vectors", w->f[i].path);
            break;
        }
        size_t v = 0;
        for (size_t d = 0; d < o->rr->n_docs; d++)
            for (size_t j = 0; j < o->n_chunks[d]; j++, v++)
                items[k++] = (emb_item){o->rr->docs[d].text + o->chunks[d][j].off, o->chunks[d][j].len,
                                        o->vecs + v * (size_t)dim};
    }
    if (rc)
        goto fail;
    qsort(items, total, sizeof *items, cmp_len);
    for (size_t s = 0; s < total && !rc; s += (size_t)batch) {
        int n = (int)(total - s < (size_t)batch ? total - s : (size_t)batch);
        for (int j = 0; j < n; j++) {
            texts[j] = items[s + (size_t)j].text;
            lens[j] = items[s + (size_t)j].len;
        }
        if ((rc = qr_embed_texts(m, texts, lens, n, tmp)))
            break;
        for (int j = 0; j < n; j++)
            memcpy(items[s + (size_t)j].dst, tmp + (size_t)j * (size_t)dim, (size_t)dim * sizeof *tmp);
        /* a commit batch holds up to commit_chunks chunks: minutes of CPU embedding */
        emit_progress(prog, prog->files_done, prog->chunks_done + s + (size_t)n, w->f[a].path);
        if (prog->stop && s + (size_t)n < total)
            rc = QR_ECANCELED;
    }
fail:
    free(items);
    free(texts);
    free(lens);
    free(tmp);
    return rc;
}

/* ---------------------------------------------------------------- open */

static const char *pool_name(qr_pool_mode p)
{
    return p == QR_POOL_CLS ? "cls" : p == QR_POOL_LAST ? "last" : "mean";
}

static int open_store(const char *dir, const qr_ingest_opts *o, bool create, qr_store **out)
{
    qr_embedder_id e;
    memset(&e, 0, sizeof e);
    const char *tokname = "words";
    if (o && o->embedder) {
        const qr_model_config *cfg = qr_model_cfg(o->embedder);
        snprintf(e.model, sizeof e.model, "%s", o->embedder_path ? o->embedder_path : "");
        int rc = o->embedder_path ? qr_embedder_hash(o->embedder_path, e.hash, sizeof e.hash) : 0;
        if (rc)
            return rc;
        e.dim = cfg->d_model;
        snprintf(e.pooling, sizeof e.pooling, "%s", pool_name(cfg->pooling));
        e.normalize = cfg->normalize;
        tokname = e.hash[0] ? e.hash : "embedder";
    }
    qr_store_open_opts so = {.create = create,
                             .map_size = o ? o->map_size : 0,
                             .embedder = o && o->embedder ? &e : NULL,
                             .factory = o ? o->factory : NULL,
                             .chunk_tokens = o ? o->chunk.max_tokens : 0,
                             .chunk_overlap = o ? qr_store_overlap_opt(o->chunk.overlap_tokens) : 0,
                             .chunk_tokenizer = tokname};
    char mp[PATH_MAX];
    snprintf(mp, sizeof mp, "%s/manifest.json", dir);
    bool existed = access(mp, F_OK) == 0;
    qr_store *s = NULL;
    int rc = qr_store_open(dir, &so, &s);
    if (rc)
        return rc;
    if (o && existed) {
        const qr_manifest *m = qr_store_manifest(s);
        if (m->has_embedder && !o->embedder) {
            char a[1400];
            qr_embedder_describe(&m->embedder, a, sizeof a);
            qr_store_close(s);
            return qr_fail(QR_EMISMATCH, "%s: the store was embedded with %s; ingest needs that embedder "
                                         "(--embedder)", dir, a);
        }
        if (o->factory && strcmp(m->factory, o->factory) != 0 && (rc = qr_store_set_factory(s, o->factory))) {
            qr_store_close(s);
            return rc;
        }
        bool same_tok = !m->has_embedder || !m->chunk_tokenizer[0] || strcmp(m->chunk_tokenizer, tokname) == 0;
        if (m->n_chunks > 0 &&
            (m->chunk_tokens != o->chunk.max_tokens || m->chunk_overlap != o->chunk.overlap_tokens || !same_tok)) {
            rc = qr_fail(QR_EMISMATCH,
                         "%s: the store was chunked with %d tokens, overlap %d (tokenizer %s); refusing %d/%d (%s) "
                         "(use the store's chunking or a new store)",
                         dir, m->chunk_tokens, m->chunk_overlap, m->chunk_tokenizer, o->chunk.max_tokens,
                         o->chunk.overlap_tokens, tokname);
            qr_store_close(s);
            return rc;
        }
    }
    *out = s;
    return 0;
}

/* Commits a transaction built by fn; on QR_ELIMIT (map full) aborts and retries
 * once after the store has grown its map. */
typedef int (*txn_fn)(ctx *c, qr_store_txn *t, void *user);

static int with_txn(ctx *c, txn_fn fn, void *user)
{
    int rc = 0;
    for (int attempt = 0; attempt < 8; attempt++) {
        qr_store_txn *t = NULL;
        if ((rc = qr_store_txn_begin(c->s, true, &t)))
            return rc;
        rc = open_dbs(c, t);
        if (!rc)
            rc = fn(c, t, user);
        if (!rc)
            rc = qr_bm25_flush(c->bm, qr_store_txn_mdb(t));
        if (!rc)
            return qr_store_txn_commit(t);
        qr_store_txn_abort(t);
        /* handles opened in an aborted transaction are not valid afterwards */
        qr_bm25_close(c->bm);
        c->bm = NULL;
        c->have_dbi = false;
        if (rc != QR_ELIMIT)
            return rc;
    }
    return rc;
}

/* ---------------------------------------------------------------- run */

typedef struct {
    walker *w;
    file_out *out;
    size_t a, b;
    int dim;
} batch_arg;

static int txn_write_batch(ctx *c, qr_store_txn *t, void *user)
{
    batch_arg *ba = user;
    int rc = 0;
    for (size_t i = ba->a; i < ba->b && !rc; i++) {
        walk_file *f = &ba->w->f[i];
        file_out *o = &ba->out[i];
        if (o->kind == 2) {
            rc = write_file(c, t, f, o, ba->dim);
        } else if (o->kind == 1) { /* same content, new mtime: refresh the record */
            file_rec r;
            if ((rc = rec_get(qr_store_txn_mdb(t), c->files_dbi, f->path, &r)) == 0) {
                r.size = f->size;
                r.mtime_ns = f->mtime_ns;
                rc = rec_put(qr_store_txn_mdb(t), c->files_dbi, f->path, &r);
            }
        } else if (o->kind == 3 && f->have_rec) {
            /* a file that was ingested and is now skipped (binary, too large): its old
             * documents would be stale */
            if (!(rc = delete_file_docs(c, t, f->path, NULL))) {
                MDB_val k = {strlen(f->path), f->path};
                int m = mdb_del(qr_store_txn_mdb(t), c->files_dbi, &k, NULL);
                if (m && m != MDB_NOTFOUND)
                    rc = qr_fail(QR_EIO, "ingest: %s: %s", FILES_DB, mdb_strerror(m));
            }
        }
    }
    return rc;
}

typedef struct {
    const char *const *paths; /* canonical paths (or prefixes for directories) */
    size_t n;
    bool prune;               /* remove the recorded files under scope that no longer exist */
    bool *matched;            /* per path: something was removed */
    qr_ingest_report *rep;
    char **victims;           /* canonical file paths to remove */
    size_t nv;
    size_t *ndocs;            /* per victim: documents deleted */
    const char *const *scope; /* prune: canonical roots (the PATH arguments); n_scope 0: the whole store */
    size_t n_scope;
    bool force;               /* prune: even more than half of the store's documents */
    uint64_t prune_docs;      /* prune: documents of the victims, by their file records */
} remove_arg;

static bool under(const char *path, const char *root)
{
    size_t n = strlen(root);
    if (strncmp(path, root, n) != 0)
        return false;
    return path[n] == '\0' || path[n] == '/' || (n > 0 && root[n - 1] == '/');
}

/* A path as given on the command line, made absolute and canonical as far as
 * it still exists (a gone one: absolute by the working directory), as the
 * store records files. malloc'd; NULL when out of memory. */
static char *canon_path(const char *path)
{
    char real[PATH_MAX];
    if (realpath(path, real))
        return strdup(real);
    if (path[0] == '/')
        return strdup(path);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        cwd[0] = '\0';
    size_t n = strlen(cwd) + strlen(path) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", cwd, path);
    return p;
}

/* Collects the recorded files to remove into ra->victims (a read transaction
 * first, so that a run with nothing to remove writes nothing). */
static int find_victims(qr_store *s, remove_arg *ra)
{
    qr_store_txn *t = NULL;
    int rc = qr_store_txn_begin(s, false, &t);
    if (rc)
        return rc;
    MDB_txn *txn = qr_store_txn_mdb(t);
    MDB_dbi dbi;
    int m = mdb_dbi_open(txn, FILES_DB, 0, &dbi);
    if (m) {
        qr_store_txn_abort(t);
        return m == MDB_NOTFOUND ? 0 : qr_fail(QR_EIO, "ingest: open %s: %s", FILES_DB, mdb_strerror(m));
    }
    MDB_cursor *cur;
    if ((m = mdb_cursor_open(txn, dbi, &cur))) {
        qr_store_txn_abort(t);
        return qr_fail(QR_EIO, "ingest: cursor: %s", mdb_strerror(m));
    }
    /* collect first: deleting while walking the same cursor is fiddly */
    char **victims = NULL;
    size_t nv = 0, cap = 0;
    MDB_val k, v;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (mrc == 0 && !rc) {
        char p[QR_STORE_MAX_PATH + 1];
        size_t len = k.mv_size < QR_STORE_MAX_PATH ? k.mv_size : QR_STORE_MAX_PATH;
        memcpy(p, k.mv_data, len);
        p[len] = '\0';
        bool hit = false;
        if (ra->prune) {
            /* only under the paths given: a file system that is not mounted
             * here must not take the rest of the store with it */
            bool in_scope = ra->n_scope == 0;
            for (size_t i = 0; i < ra->n_scope && !in_scope; i++)
                in_scope = under(p, ra->scope[i]);
            struct stat st;
            hit = in_scope && stat(p, &st) != 0 && (errno == ENOENT || errno == ENOTDIR);
            if (hit) {
                file_rec r;
                if (v.mv_size == sizeof r) {
                    memcpy(&r, v.mv_data, sizeof r);
                    ra->prune_docs += r.n_docs;
                }
            }
        }
        for (size_t i = 0; i < ra->n; i++)
            if (under(p, ra->paths[i])) {
                hit = true;
                ra->matched[i] = true;
            }
        if (hit) {
            if (nv == cap) {
                cap = cap ? cap * 2 : 16;
                char **nvv = realloc(victims, cap * sizeof *nvv);
                if (!nvv) {
                    rc = qr_fail(QR_ENOMEM, "ingest: remove list");
                    break;
                }
                victims = nvv;
            }
            if (!(victims[nv] = strdup(p))) {
                rc = qr_fail(QR_ENOMEM, "ingest: remove list");
                break;
            }
            nv++;
        }
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    qr_store_txn_abort(t);
    ra->victims = victims;
    ra->nv = nv;
    return rc;
}

static int txn_remove(ctx *c, qr_store_txn *t, void *user)
{
    remove_arg *ra = user;
    MDB_txn *txn = qr_store_txn_mdb(t);
    char **victims = ra->victims;
    size_t nv = ra->nv;
    int rc = 0;
    for (size_t i = 0; i < nv && !rc; i++) {
        if ((rc = delete_file_docs(c, t, victims[i], &ra->ndocs[i])))
            break;
        MDB_val dk = {strlen(victims[i]), victims[i]};
        int m = mdb_del(txn, c->files_dbi, &dk, NULL);
        if (m && m != MDB_NOTFOUND)
            rc = qr_fail(QR_EIO, "ingest: %s: %s", FILES_DB, mdb_strerror(m));
    }
    return rc;
}

static void free_victims(remove_arg *ra)
{
    for (size_t i = 0; i < ra->nv; i++)
        free(ra->victims[i]);
    free(ra->victims);
    free(ra->ndocs);
    ra->ndocs = NULL;
    ra->victims = NULL;
    ra->nv = 0;
}

/* Removes what ra selects: scan, then one write transaction if anything matched. */
static int remove_files(ctx *c, remove_arg *ra)
{
    int rc = find_victims(c->s, ra);
    if (!rc && ra->prune && ra->nv && !ra->force) {
        /* more than half of the store gone at once is far likelier a path not
         * mounted or mistyped than a corpus deleted */
        qr_store_counts sc;
        if (!(rc = qr_store_counts_get(c->s, &sc)) && ra->prune_docs * 2 > sc.docs)
            rc = qr_fail(QR_ELIMIT,
                         "ingest: --prune would remove %llu of the store's %llu documents (%zu files no longer "
                         "found under the paths given), more than half: check that those paths are mounted "
                         "and readable, or pass --force to prune anyway (nothing was pruned; the files "
                         "added or updated by this run are committed)",
                         (unsigned long long)ra->prune_docs, (unsigned long long)sc.docs, ra->nv);
    }
    if (!rc && ra->nv) {
        if (!(ra->ndocs = calloc(ra->nv, sizeof *ra->ndocs)))
            rc = qr_fail(QR_ENOMEM, "ingest: remove list");
        if (!rc)
            rc = with_txn(c, txn_remove, ra);
        if (!rc)
            ra->rep->commits++;
        for (size_t i = 0; i < ra->nv && !rc; i++) {
            qr_ingest_file *f;
            if (!(rc = report_add(ra->rep, ra->victims[i], QR_INGEST_REMOVED, NULL, &f)))
                f->docs = ra->ndocs[i];
        }
    }
    free_victims(ra);
    return rc;
}

int qr_ingest_run(const char *dir, const char *const *paths, size_t n_paths, const qr_ingest_opts *opts,
                  qr_ingest_report *report)
{
    qr_ingest_opts o;
    if (opts)
        o = *opts;
    else
        qr_ingest_opts_default(&o);
    if (o.jobs <= 0)
        o.jobs = 4;
    if (o.batch <= 0)
        o.batch = 32;
    if (!o.commit_chunks)
        o.commit_chunks = 4096;
    if (!dir || (n_paths && !paths))
        return qr_fail(QR_EINVAL, "ingest: no store directory or paths");
    double t0 = now_s();
    qr_ingest_report rep;
    memset(&rep, 0, sizeof rep);
    walker w;
    memset(&w, 0, sizeof w);
    w.hidden = o.include_hidden;
    w.filter = (qr_path_filter){o.include, o.n_include, o.exclude, o.n_exclude, o.default_excludes};
    w.max_bytes = o.reader.max_file_bytes ? o.reader.max_file_bytes : ((size_t)256 << 20);
    o.reader.max_file_bytes = w.max_bytes;
    ctx c = {0};
    file_out *out = NULL;
    qr_chunker *chunker = NULL;
    pthread_t *th = NULL;
    int n_th = 0;
    work_q q;
    memset(&q, 0, sizeof q);
    pthread_mutex_init(&q.mu, NULL);
    pthread_cond_init(&q.cv_done, NULL);
    pthread_cond_init(&q.cv_room, NULL);
    int rc = 0;

    if (o.shard_count > 1 && (o.shard_index < 0 || o.shard_index >= o.shard_count)) {
        rc = qr_fail(QR_EINVAL, "ingest: shard %d/%d: index must be 0..%d", o.shard_index, o.shard_count,
                     o.shard_count - 1);
        goto fail;
    }
    if ((rc = qr_filter_check_patterns("include", o.include, o.n_include)) ||
        (rc = qr_filter_check_patterns("exclude", o.exclude, o.n_exclude)))
        goto fail;
    w.cancel = o.cancel;
    for (size_t i = 0; i < n_paths && !rc && !w.canceled; i++)
        rc = walk_root(&w, paths[i]);
    w.root = NULL;
    rep.excluded_files = w.excl_files;
    rep.excluded_dirs = w.excl_dirs;
    if (rc)
        goto fail;
    if (o.shard_count > 1)
        rep.other_shards = walk_shard(&w, o.shard_index, o.shard_count);
    rep.walk_s = now_s() - t0;
    rep.files_seen = w.n;

    if (o.embedder && o.chunk.max_tokens > qr_embed_seq_limit(o.embedder)) {
        rc = qr_fail(QR_EINVAL, "ingest: chunk-tokens %d exceeds the embedder's sequence limit %d",
                     o.chunk.max_tokens, qr_embed_seq_limit(o.embedder));
        goto fail;
    }
    if ((rc = open_store(dir, &o, true, &c.s)))
        goto fail;
    int dim = o.embedder ? qr_model_cfg(o.embedder)->d_model : 0;
    if ((rc = qr_chunker_create(o.embedder ? qr_model_tokenizer(o.embedder) : NULL, &o.chunk, &chunker)))
        goto fail;

    /* previous records (one read transaction; a new store has no files database yet) */
    {
        qr_store_txn *t = NULL;
        if ((rc = qr_store_txn_begin(c.s, false, &t)))
            goto fail;
        MDB_dbi dbi;
        int m = mdb_dbi_open(qr_store_txn_mdb(t), FILES_DB, 0, &dbi);
        if (m && m != MDB_NOTFOUND)
            rc = qr_fail(QR_EIO, "ingest: open %s: %s", FILES_DB, mdb_strerror(m));
        for (size_t i = 0; i < w.n && !rc && !m; i++) {
            file_rec r;
            int g = rec_get(qr_store_txn_mdb(t), dbi, w.f[i].path, &r);
            if (g == 0) {
                w.f[i].have_rec = true;
                w.f[i].rec_size = r.size;
                w.f[i].rec_mtime = r.mtime_ns;
                memcpy(w.f[i].rec_hash, r.hash, sizeof r.hash);
            } else if (g != QR_ENOTFOUND) {
                rc = g;
            }
        }
        qr_store_txn_abort(t);
        if (rc)
            goto fail;
    }

    out = calloc(w.n ? w.n : 1, sizeof *out);
    if (!out) {
        rc = qr_fail(QR_ENOMEM, "ingest: %zu files", w.n);
        goto fail;
    }
    q.w = &w;
    q.out = out;
    q.chunker = chunker;
    q.ropts = &o.reader;
    n_th = o.jobs < (int)w.n ? o.jobs : (int)w.n;
    th = calloc(n_th > 0 ? (size_t)n_th : 1, sizeof *th);
    if (!th) {
        rc = qr_fail(QR_ENOMEM, "ingest: threads");
        goto fail;
    }
    for (int i = 0; i < n_th; i++)
        if (pthread_create(&th[i], NULL, worker, &q)) {
            n_th = i;
            rc = qr_fail(QR_EINTERNAL, "ingest: cannot start reader threads");
            goto fail;
        }

    run_progress prog = {.o = &o, .t0 = t0, .files_total = w.n, .stop = w.canceled};
    size_t a = 0;
    while (a < w.n && !rc && !prog.stop) {
        /* gather whole files until commit_chunks */
        size_t b = a, chunks = 0;
        while (b < w.n && (b == a || chunks < o.commit_chunks)) {
            pthread_mutex_lock(&q.mu);
            while (!out[b].state)
                pthread_cond_wait(&q.cv_done, &q.mu);
            pthread_mutex_unlock(&q.mu);
            if (out[b].kind == 2)
                chunks += out[b].total_chunks;
            b++;
            if (b - a >= WINDOW / 2)
                break;
        }
        if (canceled(o.cancel)) {
            prog.stop = 1;
            break;
        }
        double te = now_s();
        prog.files_done = a;
        prog.chunks_done = rep.chunks;
        if (o.embedder)
            rc = embed_files(o.embedder, o.batch, &w, out, a, b, dim, &prog);
        rep.embed_s += now_s() - te;
        if (rc == QR_ECANCELED && prog.stop) { /* this batch is dropped: nothing of it was written */
            rc = 0;
            break;
        }
        if (rc)
            break;
        double tc = now_s();
        batch_arg ba = {&w, out, a, b, dim};
        bool need = false;
        for (size_t i = a; i < b; i++)
            need |= out[i].kind == 1 || out[i].kind == 2 || (out[i].kind == 3 && w.f[i].have_rec);
        if (need) {
            rc = with_txn(&c, txn_write_batch, &ba);
            rep.commits++;
        }
        rep.commit_s += now_s() - tc;
        if (rc)
            break;
        for (size_t i = a; i < b && !rc; i++) {
            file_out *fo = &out[i];
            walk_file *f = &w.f[i];
            qr_ingest_file *rf = NULL;
            if (fo->kind == 0 || fo->kind == 1) {
                rc = report_add(&rep, f->path, QR_INGEST_UNCHANGED, NULL, &rf);
            } else if (fo->kind == 3) {
                rc = report_add(&rep, f->path, QR_INGEST_SKIPPED, fo->reason, &rf);
            } else {
                rc = report_add(&rep, f->path, f->have_rec ? QR_INGEST_UPDATED : QR_INGEST_ADDED, NULL, &rf);
                if (!rc) {
                    rf->docs = fo->rr->n_docs;
                    rf->doc_ids = fo->doc_ids;
                    fo->doc_ids = NULL;
                    rf->chunks = fo->total_chunks;
                    rep.docs += fo->rr->n_docs;
                    rep.chunks += fo->total_chunks;
                    rep.bytes_read += fo->bytes;
                }
            }
            if (rf) {
                rf->format = fo->format;
                rf->n_warnings = fo->rr ? fo->rr->n_warnings : 0;
                rf->encoding = fo->rr ? fo->rr->encoding : NULL;
                rf->encoding_fallback = fo->rr && fo->rr->encoding_fallback;
                rep.fallback_decoded += rf->encoding_fallback;
                for (size_t k = 0; fo->rr && k < fo->rr->n_warnings; k++)
                    QR_WARN("ingest: %s: %s", f->path, fo->rr->warnings[k]);
            }
            file_out_clear(fo);
        }
        pthread_mutex_lock(&q.mu);
        q.consumed = b;
        pthread_cond_broadcast(&q.cv_room);
        pthread_mutex_unlock(&q.mu);
        emit_progress(&prog, b, rep.chunks, w.f[b - 1].path);
        a = b;
    }
    if (rc)
        goto fail;
    /* asked to stop with files left, or before pruning (a prune is what a user
     * stopping at the last moment least wants done) */
    if (w.canceled || ((prog.stop || canceled(o.cancel)) && (a < w.n || o.prune))) {
        rep.stopped = true;
        rep.files_left = w.n - a;
    }
    if (o.prune && !rep.stopped) {
        /* prune only under the PATH arguments (none given: the whole store) */
        char **scope = calloc(n_paths ? n_paths : 1, sizeof *scope);
        if (!scope)
            rc = qr_fail(QR_ENOMEM, "ingest: prune");
        for (size_t i = 0; i < n_paths && !rc; i++)
            if (!(scope[i] = canon_path(paths[i])))
                rc = qr_fail(QR_ENOMEM, "ingest: prune");
        if (!rc) {
            remove_arg ra = {.prune = true, .rep = &rep, .scope = (const char *const *)scope, .n_scope = n_paths,
                             .force = o.force};
            rc = remove_files(&c, &ra);
        }
        for (size_t i = 0; scope && i < n_paths; i++)
            free(scope[i]);
        free(scope);
        if (rc)
            goto fail;
    }
    if ((rc = qr_store_sync(c.s)))
        goto fail;
    qr_store_counts sc;
    if ((rc = qr_store_counts_get(c.s, &sc)))
        goto fail;
    rep.store_docs = (size_t)sc.docs;
    rep.store_chunks = (size_t)sc.chunks;
    rep.total_s = now_s() - t0;
    if (rep.stopped) {
        rc = qr_fail(QR_ECANCELED, "ingest: stopped after %zu of %zu files", a, w.n);
        goto fail;
    }
    emit_progress(&prog, w.n, rep.chunks, NULL);

fail:
    pthread_mutex_lock(&q.mu);
    q.stop = true;
    pthread_cond_broadcast(&q.cv_room);
    pthread_mutex_unlock(&q.mu);
    for (int i = 0; i < n_th; i++)
        pthread_join(th[i], NULL);
    free(th);
    for (size_t i = 0; out && i < w.n; i++)
        file_out_clear(&out[i]);
    free(out);
    qr_bm25_close(c.bm);
    qr_store_close(c.s);
    qr_chunker_destroy(chunker);
    walker_free(&w);
    pthread_mutex_destroy(&q.mu);
    pthread_cond_destroy(&q.cv_done);
    pthread_cond_destroy(&q.cv_room);
    if (rc == QR_ECANCELED && rep.stopped) {
        *report = rep; /* what was committed (pipeline.h, Stopping) */
        return rc;
    }
    if (rc) {
        qr_ingest_report_free(&rep);
        return rc;
    }
    *report = rep;
    return 0;
}

int qr_ingest_remove(const char *dir, const char *const *paths, size_t n_paths, qr_ingest_report *report)
{
    double t0 = now_s();
    qr_ingest_report rep;
    memset(&rep, 0, sizeof rep);
    ctx c = {0};
    char **canon = calloc(n_paths ? n_paths : 1, sizeof *canon);
    bool *matched = calloc(n_paths ? n_paths : 1, sizeof *matched);
    int rc = 0;
    if (!canon || !matched) {
        rc = qr_fail(QR_ENOMEM, "ingest: rm");
        goto fail;
    }
    for (size_t i = 0; i < n_paths; i++) {
        canon[i] = canon_path(paths[i]);
        if (!canon[i]) {
            rc = qr_fail(QR_ENOMEM, "ingest: rm");
            goto fail;
        }
        size_t L = strlen(canon[i]);
        while (L > 1 && canon[i][L - 1] == '/')
            canon[i][--L] = '\0';
    }
    qr_store_open_opts so = {0};
    if ((rc = qr_store_open(dir, &so, &c.s)))
        goto fail;
    remove_arg ra = {.paths = (const char *const *)canon, .n = n_paths, .matched = matched, .rep = &rep};
    if ((rc = remove_files(&c, &ra)))
        goto fail;
    for (size_t i = 0; i < n_paths && !rc; i++)
        if (!matched[i])
            rc = report_add(&rep, canon[i], QR_INGEST_SKIPPED, "not in store", NULL);
    if (!rc)
        rc = qr_store_sync(c.s);
    rep.total_s = now_s() - t0;
fail:
    qr_bm25_close(c.bm);
    qr_store_close(c.s);
    for (size_t i = 0; canon && i < n_paths; i++)
        free(canon[i]);
    free(canon);
    free(matched);
    if (rc) {
        qr_ingest_report_free(&rep);
        return rc;
    }
    *report = rep;
    return 0;
}

/* ---------------------------------------------------------------- one document */

typedef struct {
    uint64_t id;
    const char *path; /* the doc's path when it is a whole file's document, else NULL */
} del_arg;

static int txn_delete_one(ctx *c, qr_store_txn *t, void *user)
{
    del_arg *a = user;
    int rc = delete_doc(c, t, a->id);
    if (!rc && a->path) {
        MDB_val dk = {strlen(a->path), (void *)a->path};
        int m = mdb_del(qr_store_txn_mdb(t), c->files_dbi, &dk, NULL);
        if (m && m != MDB_NOTFOUND)
            rc = qr_fail(QR_EIO, "ingest: %s: %s", FILES_DB, mdb_strerror(m));
    }
    return rc;
}

int qr_ingest_delete_doc(const char *dir, uint64_t doc_id, size_t *n_chunks)
{
    ctx c = {0};
    qr_store_open_opts so = {0};
    int rc = qr_store_open(dir, &so, &c.s);
    if (rc)
        return rc;
    char *path = NULL;
    uint32_t nch = 0;
    qr_store_txn *t = NULL;
    if (!(rc = qr_store_txn_begin(c.s, false, &t))) {
        qr_store_doc d;
        if (!(rc = qr_store_get_doc(t, doc_id, &d))) {
            nch = d.n_chunks;
            if (!strstr(d.path, "#L") && !(path = strdup(d.path)))
                rc = qr_fail(QR_ENOMEM, "ingest: delete");
        } else if (rc == QR_ENOTFOUND) {
            rc = qr_fail(QR_ENOTFOUND, "no document with id %llu", (unsigned long long)doc_id);
        }
        qr_store_txn_abort(t);
    }
    if (!rc) {
        del_arg a = {doc_id, path};
        rc = with_txn(&c, txn_delete_one, &a);
    }
    if (!rc)
        rc = qr_store_sync(c.s);
    qr_bm25_close(c.bm);
    qr_store_close(c.s);
    free(path);
    if (!rc && n_chunks)
        *n_chunks = nch;
    return rc;
}

/* The kind of a skip reason: its text before ':' ("binary: ..." -> "binary"),
 * the whole reason when it has none ("not in store"). */
static void reason_kind(const char *reason, char *buf, size_t n)
{
    const char *c = reason ? strchr(reason, ':') : NULL;
    size_t len = reason ? (c ? (size_t)(c - reason) : strlen(reason)) : 0;
    if (len >= n)
        len = n - 1;
    memcpy(buf, reason ? reason : "", len);
    buf[len] = '\0';
}

static json_t *file_to_json(const qr_ingest_file *f)
{
    json_t *o = json_pack("{s:s, s:s}", "path", f->path, "status", qr_ingest_status_name(f->status));
    if (!o)
        return NULL; /* a path that is not UTF-8 */
    if (f->reason)
        json_object_set_new(o, "reason", json_string(f->reason));
    if (f->format)
        json_object_set_new(o, "format", json_string(f->format));
    if (f->encoding) {
        json_object_set_new(o, "encoding", json_string(f->encoding));
        json_object_set_new(o, "encoding_source", json_string(f->encoding_fallback ? "fallback" : "byte order mark"));
    }
    if (f->status == QR_INGEST_ADDED || f->status == QR_INGEST_UPDATED || f->status == QR_INGEST_REMOVED)
        json_object_set_new(o, "docs", json_integer((json_int_t)f->docs));
    if (f->status == QR_INGEST_ADDED || f->status == QR_INGEST_UPDATED)
        json_object_set_new(o, "chunks", json_integer((json_int_t)f->chunks));
    if (f->n_warnings)
        json_object_set_new(o, "warnings", json_integer((json_int_t)f->n_warnings));
    return o;
}

int qr_ingest_report_to_json_max(const qr_ingest_report *r, size_t max_files, json_t **out)
{
    json_t *files = json_array(), *by_reason = json_object();
    if (!files || !by_reason) {
        json_decref(files);
        json_decref(by_reason);
        return qr_fail(QR_ENOMEM, "ingest: JSON report");
    }
    /* files[] is bounded (a re-ingest of a million-file corpus would print a
     * million "unchanged" lines): what changed or was skipped comes first */
    size_t n_pri = 0, omitted = 0;
    for (size_t i = 0; i < r->n_files; i++)
        n_pri += r->files[i].status != QR_INGEST_UNCHANGED;
    size_t room_pri = max_files, room_unch = max_files > n_pri ? max_files - n_pri : 0;
    for (size_t i = 0; i < r->n_files; i++) {
        const qr_ingest_file *f = &r->files[i];
        if (f->status == QR_INGEST_SKIPPED) {
            char kind[64];
            reason_kind(f->reason, kind, sizeof kind);
            json_t *c = json_object_get(by_reason, kind);
            json_object_set_new(by_reason, kind, json_integer(json_integer_value(c) + 1));
        }
        size_t *room = f->status == QR_INGEST_UNCHANGED ? &room_unch : &room_pri;
        if (!*room) {
            omitted++;
            continue;
        }
        json_t *o = file_to_json(f);
        if (!o)
            continue;
        (*room)--;
        json_array_append_new(files, o);
    }
    json_t *root = json_pack(
        "{s:{s:I, s:I, s:I, s:I, s:I}, s:I, s:I, s:I, s:I, s:I, s:I, s:{s:f, s:f, s:f, s:f}, s:o, s:I, s:o, s:I}",
        "counts", "added", (json_int_t)r->added, "updated", (json_int_t)r->updated, "unchanged",
        (json_int_t)r->unchanged, "removed", (json_int_t)r->removed, "skipped", (json_int_t)r->skipped,
        "files_seen", (json_int_t)r->files_seen, "docs", (json_int_t)r->docs, "chunks", (json_int_t)r->chunks,
        "store_docs", (json_int_t)r->store_docs, "store_chunks", (json_int_t)r->store_chunks, "commits",
        (json_int_t)r->commits, "timings_s", "walk", r->walk_s, "embed", r->embed_s, "commit", r->commit_s, "total",
        r->total_s, "skipped_by_reason", by_reason, "fallback_decoded", (json_int_t)r->fallback_decoded, "files",
        files, "files_omitted", (json_int_t)omitted);
    if (!root)
        return qr_fail(QR_ENOMEM, "ingest: JSON report");
    if (r->other_shards)
        json_object_set_new(root, "other_shards", json_integer((json_int_t)r->other_shards));
    if (r->stopped) {
        json_object_set_new(root, "stopped", json_true());
        json_object_set_new(root, "files_left", json_integer((json_int_t)r->files_left));
    }
    json_object_set_new(root, "excluded", json_pack("{s:I, s:I}", "files", (json_int_t)r->excluded_files,
                                                    "directories", (json_int_t)r->excluded_dirs));
    *out = root;
    return 0;
}

int qr_ingest_report_to_json(const qr_ingest_report *r, json_t **out)
{
    return qr_ingest_report_to_json_max(r, QR_INGEST_JSON_MAX_FILES, out);
}
