/* The CUDA backend's host-side decisions (runtime/cuda/cuda_host.h), on the
 * CPU of any build (they need no GPU):
 *
 * - the staging ring: a simulation of ops that stage 1..4 arrays each before
 *   the kernel that reads them is enqueued (rope, copy_rows, attention), with
 *   syncs in between, checks at every kernel launch that each array the op
 *   staged is still intact in a buffer not yet freed, and at every placement
 *   that no pinned bytes with a copy still in flight are overwritten. The
 *   issue 11 cases first (an array staged just before one that outgrows or
 *   wraps the ring), then 20000 random ops.
 * - f16 row scaling: rows of f32 from 1e-30 to 3e38 in magnitude scaled by
 *   qr_f16_row_scale, rounded to f16 with the project's converter, scaled
 *   back: no overflow and the documented error bound, element by element.
 * - GGUF blocks kept as stored (runtime/cuda/cuda_quant.h): the chunk
 *   decoder every weight-reading kernel uses, run here on the host, against
 *   the CPU's dequantization (qr_convert_to_f32, bit-exact with ggml) bit for
 *   bit, for all eight kept types on random block bytes (any finite f16
 *   scales, subnormals included), at every chunk of multi-block rows; its f16
 *   decoding against qr_f16_to_f32 for all 65536 halves; and the layout
 *   table (block values / bytes) against runtime/dtype.c. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "runtime/cuda/cuda_host.h"
#include "runtime/cuda/cuda_quant.h"
#include "runtime/dtype.h"
#include "runtime/weights/weights.h"
#include "tests/unit/cuda/gguf_blocks.h"
#include "tests/unit/test.h"

/* ------------------------------------------------------------ ring simulation */

#define MAXBUF 64
#define MAXARR 4096

typedef struct {
    int buf;          /* buffer generation */
    size_t at, need;  /* bytes [at, at + need) of it */
    int stamp;        /* written into its bytes; checked at launch */
    bool pending;     /* its host -> device copy may still be in flight (no sync since) */
} arr;

static int *mem[MAXBUF];      /* device bytes of each buffer generation: the stamp of the array written there */
static size_t mem_cap[MAXBUF];
static bool freed[MAXBUF];
static int cur, n_gen;
static int retired[MAXBUF], n_retired;
static arr arrs[MAXARR];
static int n_arr, stamp_next = 1;
static int op_first;          /* index of the current op's first array */
static qr_stage_ring ring;

static void sim_new_buf(size_t cap)
{
    mem[n_gen] = calloc(cap, sizeof(int));
    mem_cap[n_gen] = cap;
    freed[n_gen] = false;
    cur = n_gen++;
}

static void sim_reset(size_t cap)
{
    for (int i = 0; i < n_gen; i++)
        free(mem[i]);
    n_gen = n_retired = n_arr = 0;
    sim_new_buf(cap);
    memset(&ring, 0, sizeof ring);
    ring.cap = ring.end = cap;
}

/* every copy has run: nothing pending; retired buffers freed (qr_cuda_stage_synced) */
static void sim_stream_sync(void)
{
    for (int i = 0; i < n_arr; i++)
        arrs[i].pending = false;
}

static void sim_full_sync(void)
{
    sim_stream_sync();
    for (int i = 0; i < n_retired; i++)
        freed[retired[i]] = true;
    n_retired = 0;
    n_arr = op_first = 0; /* nothing staged before is read any more */
    qr_stage_synced(&ring);
}

static void sim_op_begin(void)
{
    op_first = n_arr;
    qr_stage_op_begin(&ring);
}

/* qr_cuda_stage's use of qr_stage_plan, with the checks */
static int sim_stage(size_t need)
{
    size_t nc = 0, at = 0;
    qr_stage_action a = qr_stage_plan(&ring, need, &nc, &at);
    if (a != QR_STAGE_PLACE)
        sim_stream_sync();
    if (a == QR_STAGE_GROW) {
        CHECK(nc >= need && nc == ring.cap);
        retired[n_retired++] = cur;
        sim_new_buf(nc);
    }
    CHECK_MSG(at + need <= mem_cap[cur], "placed past the buffer: %zu + %zu > %zu", at, need, mem_cap[cur]);
    for (int i = 0; i < n_arr; i++) {
        const arr *o = &arrs[i];
        bool overlap = o->buf == cur && o->at < at + need && at < o->at + o->need;
        if (!overlap)
            continue;
        /* pinned bytes of a copy in flight, or an array of this op whose kernel is not yet enqueued */
        CHECK_MSG(!o->pending, "overwrote pinned bytes of a copy in flight (array %d at %zu)", i, o->at);
        CHECK_MSG(i < op_first, "overwrote array %d the current op staged (at %zu, need %zu; new at %zu)", i, o->at,
                  o->need, at);
    }
    if (n_arr == MAXARR)
        sim_full_sync();
    arr *n = &arrs[n_arr++];
    n->buf = cur;
    n->at = at;
    n->need = need;
    n->stamp = stamp_next++;
    n->pending = true;
    for (size_t b = 0; b < need; b++)
        mem[cur][at + b] = n->stamp;
    return (int)a;
}

/* the op's kernel reads every array it staged */
static void sim_launch(void)
{
    for (int i = op_first; i < n_arr; i++) {
        const arr *o = &arrs[i];
        CHECK_MSG(!freed[o->buf], "array %d read from a freed buffer", i);
        bool ok = true;
        for (size_t b = 0; b < o->need && ok; b++)
            ok = mem[o->buf][o->at + b] == o->stamp;
        CHECK_MSG(ok, "array %d (at %zu, %zu bytes) was overwritten before its kernel ran", i, o->at, o->need);
    }
}

static void ring_cases(void)
{
    /* rope: positions then inv_freq larger than the whole ring (grow): the
     * positions' buffer must survive until the kernel is enqueued */
    sim_reset(1024);
    sim_op_begin();
    CHECK_INT(sim_stage(256), QR_STAGE_PLACE);
    CHECK_INT(sim_stage(2048), QR_STAGE_GROW);
    sim_launch();
    CHECK_INT(n_retired, 1);
    CHECK(!freed[0]);
    sim_full_sync();
    CHECK(freed[0]);
    CHECK_INT((int)ring.cap, 2048);

    /* copy_rows: source at 0, destination nearly the whole ring: a plain wrap
     * to 0 would overwrite the source; it must grow instead */
    sim_reset(1024);
    sim_op_begin();
    CHECK_INT(sim_stage(256), QR_STAGE_PLACE);
    CHECK_INT(sim_stage(1024), QR_STAGE_GROW);
    sim_launch();

    /* attention: descriptors near the end, tiles that fit below them: wrap
     * below, then the op may not pass its own descriptors */
    sim_reset(1024);
    sim_op_begin();
    CHECK_INT(sim_stage(512), QR_STAGE_PLACE);
    sim_launch();
    sim_op_begin();
    CHECK_INT(sim_stage(256), QR_STAGE_PLACE); /* at 512 */
    CHECK_INT(sim_stage(512), QR_STAGE_WRAP);  /* at 0, below 512 */
    CHECK_INT((int)ring.end, 512);
    CHECK_INT(sim_stage(256), QR_STAGE_GROW);  /* 512 + 256 would cross the descriptors */
    sim_launch();
    /* the next op may use the whole ring again */
    sim_op_begin();
    CHECK_INT((int)ring.end, (int)ring.cap);

    /* nothing live: a full ring wraps in place, no growth */
    sim_reset(1024);
    for (int i = 0; i < 10; i++) {
        sim_op_begin();
        sim_stage(256);
        sim_launch();
    }
    CHECK_INT(n_gen, 1);

    /* random ops, sizes from 256 bytes to 3x the ring, syncs now and then */
    srand(11);
    sim_reset(4096);
    int grows = 0;
    for (int op = 0; op < 20000; op++) {
        if (rand() % 50 == 0)
            sim_full_sync();
        sim_op_begin();
        int k = 1 + rand() % 4;
        for (int j = 0; j < k; j++) {
            size_t need = rand() % 100 == 0 ? (size_t)(1 + rand() % 48) * 256 : (size_t)(1 + rand() % 6) * 256;
            grows += sim_stage(need) == QR_STAGE_GROW;
        }
        sim_launch();
    }
    printf("ring: %d generations, %d grows, final capacity %zu\n", n_gen, grows, ring.cap);
    CHECK(ring.cap <= (size_t)64 << 10); /* growth only for arrays that need it, not for every straddle */
    sim_reset(16);
    free(mem[0]);
    n_gen = 0;
}

/* ------------------------------------------------------------ f16 row scale */

static void f16_cases(void)
{
    /* the scale itself: amax s in [2^14, 2^15), a power of two, normal */
    const float amaxes[] = {1e-30f, 1e-6f, 6.1e-5f, 0.5f, 1.0f, 1000.0f, 65504.0f, 65520.0f, 3e5f, 1e12f, 3e38f};
    for (size_t i = 0; i < sizeof amaxes / sizeof amaxes[0]; i++) {
        float s = qr_f16_row_scale(amaxes[i]);
        int e;
        float m = frexpf(s, &e);
        CHECK_MSG(m == 0.5f, "scale %g for %g is not a power of two", s, amaxes[i]);
        CHECK(isnormal(s) && isnormal(1.0f / s));
        double v = (double)amaxes[i] * s;
        if (amaxes[i] >= 1e-20f)
            CHECK_MSG(v >= 16384.0 && v < 32768.0, "amax %g scaled by %g = %g", amaxes[i], s, v);
        else
            CHECK(v < 32768.0); /* clamped at 2^126: still in range */
    }
    CHECK(qr_f16_row_scale(0.0f) == 1.0f);
    CHECK(qr_f16_row_scale(INFINITY) == 1.0f);
    CHECK(qr_f16_row_scale(NAN) == 1.0f);

    /* rows with a wide spread of magnitudes: the documented bound holds for
     * every element, and plain narrowing overflows where the scaled one does not */
    srand(7);
    const float amps[] = {1e-6f, 1.0f, 7e4f, 3e5f, 1e9f};
    for (size_t a = 0; a < sizeof amps / sizeof amps[0]; a++) {
        enum { N = 4096 };
        static float x[N];
        float amax = 0;
        for (int i = 0; i < N; i++) {
            float u = (float)rand() / (float)RAND_MAX * 2.0f - 1.0f;
            x[i] = u * amps[a] * powf(10.0f, -(float)(rand() % 8)); /* down to 1e-7 of the row's scale */
            amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
        }
        float s = qr_f16_row_scale(amax), inv = 1.0f / s;
        int over_plain = 0;
        for (int i = 0; i < N; i++) {
            float h = qr_f16_to_f32(qr_f32_to_f16(x[i] * s)) * inv;
            over_plain += isinf(qr_f16_to_f32(qr_f32_to_f16(x[i])));
            double err = fabs((double)h - (double)x[i]);
            double bound = ldexp(fabs((double)x[i]), -11) + ldexp((double)amax, -39);
            CHECK_MSG(isfinite(h) && err <= bound, "row amp %g: x %.9g -> %.9g (error %.3g > %.3g)", amps[a], x[i], h,
                      err, bound);
        }
        if (amps[a] >= 7e4f)
            CHECK_MSG(over_plain > 0, "amp %g: expected plain f16 narrowing to overflow", amps[a]);
    }
}

/* ------------------------------------------------------------ GGUF chunk decoder */

static uint64_t gb_state = 0x9E3779B97F4A7C15ull;
static uint64_t gb_rng(void) /* xorshift64*, fixed seed: the same bytes every run */
{
    gb_state ^= gb_state >> 12;
    gb_state ^= gb_state << 25;
    gb_state ^= gb_state >> 27;
    return gb_state * 0x2545F4914F6CDD1Dull;
}

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static void gguf_cases(void)
{
    /* f16 decoding: every half */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float a = qr_cq_f16(h), b = qr_f16_to_f32((uint16_t)h);
        if (isnan(b) ? !isnan(a) : fbits(a) != fbits(b))
            bad++;
    }
    CHECK_MSG(bad == 0, "qr_cq_f16 differs from qr_f16_to_f32 on %d halves", bad);
    /* layouts: the types kept, their block sizes as runtime/dtype.c has them */
    for (int t = 0; t < QR_DTYPE_COUNT; t++) {
        bool kept = false;
        for (int i = 0; i < GB_NTYPES; i++)
            kept |= gb_types[i] == (qr_dtype)t;
        CHECK_MSG(qr_cq_kept((qr_dtype)t) == kept, "%s: kept %d", qr_dtype_name((qr_dtype)t), (int)kept);
        if (kept) {
            CHECK_INT(qr_cq_block_bytes((qr_dtype)t), qr_dtype_block_bytes((qr_dtype)t));
            CHECK_INT(qr_cq_block_values((qr_dtype)t), qr_dtype_block((qr_dtype)t));
            /* 16-byte loads only where whole rows stay 16-byte multiples */
            CHECK_INT(qr_cq_aligned16((qr_dtype)t), qr_dtype_block_bytes((qr_dtype)t) % 16 == 0);
        }
    }
    /* every chunk of random rows, bit for bit against the CPU reference */
    for (int ti = 0; ti < GB_NTYPES; ti++) {
        qr_dtype t = gb_types[ti];
        const int64_t rows = 6, cols = 3 * 256;
        for (int pass = 0; pass < 2; pass++) {
            uint8_t *w = gb_make(t, rows, cols, pass ? 0.25f : 0.0f, gb_rng);
            size_t rb = qr_dtype_row_bytes(t, cols);
            float *ref = malloc((size_t)(rows * cols) * sizeof *ref);
            CHECK_OK(qr_convert_rows_to_f32(t, w, cols, 0, rows, ref));
            int diff = 0;
            for (int64_t r = 0; r < rows; r++)
                for (int64_t c = 0; c < cols / 32; c++) {
                    float v[32];
                    qr_cq_deq32(t, w + (size_t)r * rb, c, false, v);
                    for (int i = 0; i < 32; i++) {
                        float e = ref[r * cols + c * 32 + i];
                        if (fbits(v[i]) != fbits(e) && !(isnan(v[i]) && isnan(e))) {
                            if (diff++ < 3)
                                fprintf(stderr, "%s row %lld value %lld: decoder %.9g, reference %.9g\n",
                                        qr_dtype_name(t), (long long)r, (long long)(c * 32 + i), v[i], e);
                        }
                    }
                    /* one value at a time (embed, download) */
                    int64_t j = c * 32 + (int64_t)(gb_rng() % 32);
                    float one = qr_cq_deq1(t, w + (size_t)r * rb, j), e = ref[r * cols + j];
                    diff += fbits(one) != fbits(e) && !(isnan(one) && isnan(e));
                }
            CHECK_MSG(diff == 0, "%s (f16 fields %s): %d values differ from qr_convert_to_f32", qr_dtype_name(t),
                      pass ? "moderate" : "any finite", diff);
            free(ref);
            free(w);
        }
    }
}

int main(void)
{
    ring_cases();
    f16_cases();
    gguf_cases();
    return qr_test_done();
}
