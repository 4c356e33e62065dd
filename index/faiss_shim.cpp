// extern "C" shim over the FAISS C++ API (see faiss_shim.h). The only file that
// includes FAISS headers. Every entry point catches all exceptions and turns
// them into a QR_E* code plus the exception's message.
#include "index/faiss_shim.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVF.h>
#include <faiss/impl/FaissException.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>

extern "C" {
#include "common/error.h"
}

using idx_t = faiss::Index::idx_t;

struct qr_faiss {
    faiss::IndexIDMap2 *idx;
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
extern "C" int64_t qr_faiss_ntotal(const qr_faiss *f) { return (int64_t)f->idx->ntotal; }
extern "C" int qr_faiss_is_trained(const qr_faiss *f) { return f->idx->index->is_trained ? 1 : 0; }

extern "C" void qr_faiss_ids(const qr_faiss *f, int64_t *ids)
{
    const std::vector<idx_t> &m = f->idx->id_map;
    for (size_t i = 0; i < m.size(); i++)
        ids[i] = (int64_t)m[i];
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
        return 0;
    });
}

extern "C" int qr_faiss_remove(qr_faiss *f, int64_t n, const int64_t *ids, int64_t *removed, char *err,
                               size_t errlen)
{
    return guarded(err, errlen, [&]() -> int {
        // HNSW cannot remove; ask before FAISS throws halfway through IDMap2's bookkeeping.
        if (dynamic_cast<faiss::IndexHNSW *>(f->idx->index)) {
            set_err(err, errlen, "HNSW indexes cannot remove vectors");
            return QR_EUNSUPPORTED;
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
