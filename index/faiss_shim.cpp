// extern "C" shim over the FAISS C++ API (see faiss_shim.h). The only file that
// includes FAISS headers. Every entry point catches all exceptions and turns
// them into a QR_E* code plus the exception's message.
#include "index/faiss_shim.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVF.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <vector>

extern "C" {
#include "common/error.h"
}

using idx_t = faiss::Index::idx_t;

struct qr_faiss {
    faiss::IndexIDMap2 *idx;
    // HNSW cannot remove: removed vectors stay in the graph as tombstones
    // (internal positions), skipped at search time through an IDSelector on
    // the inner index. They are not saved as such: a reloaded file holds them
    // again and the store's reconciliation tombstones them again.
    std::vector<char> dead;                       // (ntotal) 1 = removed
    std::vector<idx_t> dead_list;                 // removed internal positions
    std::unique_ptr<faiss::IDSelectorBatch> dead_sel;
};

namespace {

void set_err(char *err, size_t errlen, const char *what)
{
    if (err && errlen) {
        std::snprintf(err, errlen, "%s", what);
        // FAISS messages span lines ("Error in ... at file:line: text"): keep one line.
        for (char *p = err; *p; p++)
            if (*p == '\n' || *p == '\r')
                *p = ' ';
    }
}

template <class F> int guarded(char *err, size_t errlen, F fn)
{
    try {
        return fn();
    } catch (const faiss::FaissException &e) {
        set_err(err, errlen, e.msg.c_str());
        return QR_EBACKEND;
    } catch (const std::bad_alloc &) {
        set_err(err, errlen, "out of memory");
        return QR_ENOMEM;
    } catch (const std::exception &e) {
        set_err(err, errlen, e.what());
        return QR_EBACKEND;
    } catch (...) {
        set_err(err, errlen, "unknown C++ exception");
        return QR_EBACKEND;
    }
}

} // namespace

extern "C" int qr_faiss_new(const char *factory, int dim, int metric_ip, qr_faiss **out, char *err, size_t errlen)
{
    return guarded(err, errlen, [&]() -> int {
        std::unique_ptr<faiss::Index> inner(
            faiss::index_factory(dim, factory, metric_ip ? faiss::METRIC_INNER_PRODUCT : faiss::METRIC_L2));
        if (dynamic_cast<faiss::IndexIDMap *>(inner.get())) {
            set_err(err, errlen, "factory string must not contain IDMap (the store adds IDMap2 itself)");
            return QR_EINVAL;
        }
        std::unique_ptr<faiss::IndexIDMap2> map(new faiss::IndexIDMap2(inner.get()));
        map->own_fields = true;
        inner.release();
        qr_faiss *f = new qr_faiss;
        f->idx = map.release();
        *out = f;
        return 0;
    });
}

extern "C" int qr_faiss_read(const char *path, qr_faiss **out, char *err, size_t errlen)
{
    return guarded(err, errlen, [&]() -> int {
        std::unique_ptr<faiss::Index> any(faiss::read_index(path));
        faiss::IndexIDMap2 *map = dynamic_cast<faiss::IndexIDMap2 *>(any.get());
        if (!map) {
            set_err(err, errlen, "not an IndexIDMap2 index");
            return QR_EFORMAT;
        }
        any.release();
        qr_faiss *f = new qr_faiss;
        f->idx = map;
        *out = f;
        return 0;
    });
}

extern "C" int qr_faiss_write(const qr_faiss *f, const char *path, char *err, size_t errlen)
{
    return guarded(err, errlen, [&]() -> int {
        faiss::write_index(f->idx, path);
        return 0;
    });
}

extern "C" void qr_faiss_free(qr_faiss *f)
{
    if (!f)
        return;
    delete f->idx;
    delete f;
}

extern "C" int qr_faiss_dim(const qr_faiss *f) { return (int)f->idx->d; }
extern "C" int qr_faiss_metric_ip(const qr_faiss *f) { return f->idx->metric_type == faiss::METRIC_INNER_PRODUCT; }
extern "C" int64_t qr_faiss_ntotal(const qr_faiss *f)
{
    return (int64_t)f->idx->ntotal - (int64_t)f->dead_list.size();
}
extern "C" int64_t qr_faiss_dead(const qr_faiss *f) { return (int64_t)f->dead_list.size(); }
extern "C" int qr_faiss_is_trained(const qr_faiss *f) { return f->idx->index->is_trained ? 1 : 0; }

extern "C" void qr_faiss_ids(const qr_faiss *f, int64_t *ids)
{
    const std::vector<idx_t> &m = f->idx->id_map;
    size_t o = 0;
    for (size_t i = 0; i < m.size(); i++)
        if (f->dead.empty() || !f->dead[i])
            ids[o++] = (int64_t)m[i];
}

extern "C" int qr_faiss_train(qr_faiss *f, int64_t n, const float *x, char *err, size_t errlen)
{
    return guarded(err, errlen, [&]() -> int {
        f->idx->train((idx_t)n, x);
        return 0;
    });
}

extern "C" int qr_faiss_add(qr_faiss *f, int64_t n, const float *x, const int64_t *ids, char *err, size_t errlen)
{
    return guarded(err, errlen, [&]() -> int {
        static_assert(sizeof(idx_t) == sizeof(int64_t), "idx_t is 64-bit");
        f->idx->add_with_ids((idx_t)n, x, reinterpret_cast<const idx_t *>(ids));
        if (!f->dead.empty())
            f->dead.resize((size_t)f->idx->ntotal, 0);
        return 0;
    });
}

extern "C" int qr_faiss_remove(qr_faiss *f, int64_t n, const int64_t *ids, int64_t *removed, char *err,
                               size_t errlen)
{
    return guarded(err, errlen, [&]() -> int {
        if (dynamic_cast<faiss::IndexHNSW *>(f->idx->index)) {
            // Tombstones (see struct qr_faiss).
            faiss::IndexIDMap2 *m = f->idx;
            int64_t r = 0;
            f->dead.resize((size_t)m->ntotal, 0);
            for (int64_t i = 0; i < n; i++) {
                auto it = m->rev_map.find((idx_t)ids[i]);
                if (it == m->rev_map.end() || f->dead[(size_t)it->second])
                    continue;
                f->dead[(size_t)it->second] = 1;
                f->dead_list.push_back(it->second);
                m->rev_map.erase(it);
                r++;
            }
            if (r)
                f->dead_sel.reset(new faiss::IDSelectorBatch(f->dead_list.size(), f->dead_list.data()));
            *removed = r;
            return 0;
        }
        faiss::IDSelectorBatch sel((size_t)n, reinterpret_cast<const idx_t *>(ids));
        *removed = (int64_t)f->idx->remove_ids(sel);
        return 0;
    });
}

extern "C" int qr_faiss_search(const qr_faiss *f, const float *x, int64_t k, int nprobe, int ef_search, float *dist,
                               int64_t *labels, char *err, size_t errlen)
{
    return guarded(err, errlen, [&]() -> int {
        faiss::Index *inner = f->idx->index;
        if (nprobe > 0)
            if (faiss::IndexIVF *ivf = dynamic_cast<faiss::IndexIVF *>(inner))
                ivf->nprobe = (size_t)nprobe < ivf->nlist ? (size_t)nprobe : ivf->nlist;
        if (ef_search > 0)
            if (faiss::IndexHNSW *h = dynamic_cast<faiss::IndexHNSW *>(inner))
                h->hnsw.efSearch = ef_search;
        if (f->dead_sel) {
            faiss::IndexHNSW *h = dynamic_cast<faiss::IndexHNSW *>(inner);
            faiss::IDSelectorNot live(f->dead_sel.get());
            faiss::SearchParametersHNSW p;
            p.efSearch = ef_search > 0 ? ef_search : h->hnsw.efSearch;
            p.sel = &live;
            idx_t *lab = reinterpret_cast<idx_t *>(labels);
            h->search(1, x, (idx_t)k, dist, lab, &p);
            for (int64_t i = 0; i < k; i++)
                lab[i] = lab[i] >= 0 ? f->idx->id_map[(size_t)lab[i]] : -1;
            return 0;
        }
        f->idx->search(1, x, (idx_t)k, dist, reinterpret_cast<idx_t *>(labels));
        return 0;
    });
}

extern "C" void qr_faiss_describe(const qr_faiss *f, char *buf, size_t len)
{
    const faiss::Index *inner = f->idx->index;
    const char *kind = "other";
    if (dynamic_cast<const faiss::IndexFlat *>(inner))
        kind = "Flat";
    else if (dynamic_cast<const faiss::IndexHNSW *>(inner))
        kind = "HNSW";
    else if (const faiss::IndexIVF *ivf = dynamic_cast<const faiss::IndexIVF *>(inner)) {
        std::snprintf(buf, len, "IDMap2,IVF%zu (%s)", ivf->nlist, ivf->is_trained ? "trained" : "untrained");
        return;
    }
    std::snprintf(buf, len, "IDMap2,%s", kind);
}
