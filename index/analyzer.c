/* Lucene EnglishAnalyzer (see analyzer.h). Written from UAX#29 (Unicode word
 * boundaries), Lucene's StandardTokenizer/EnglishAnalyzer documentation and
 * Martin Porter's published algorithm. */
#include "index/analyzer.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "common/error.h"

/* Word_Break classes (UAX#29 table 3) plus the token kinds Lucene treats
 * specially among "Other" characters. */
enum {
    WB_OTHER = 0,
    WB_CR,
    WB_LF,
    WB_NEWLINE,
    WB_EXTEND, /* Extend and SpacingMark-like marks (Mn, Me, Mc) */
    WB_ZWJ,
    WB_FORMAT,
    WB_RI,
    WB_KATAKANA,
    WB_HEBREW,
    WB_ALETTER,
    WB_SQ,        /* ' */
    WB_DQ,        /* " */
    WB_MIDNUMLET, /* . ’ ‘ ․ ﹒ ＇ ．*/
    WB_MIDLETTER, /* : · etc. */
    WB_MIDNUM,    /* , ; etc. */
    WB_NUMERIC,
    WB_EXTENDNUMLET,
    /* "Other" characters that Lucene still emits as tokens */
    WB_IDEO,     /* Han: one token per character */
    WB_HIRAGANA, /* one token per character */
    WB_SEA,      /* complex-context scripts: a run is one token */
    WB_EMOJI,    /* Extended_Pictographic */
};

struct qr_analyzer {
    int32_t *cp;   /* (n) code points */
    uint8_t *cls;  /* (n) Word_Break class */
    size_t cap, clscap;
    char *tok;     /* token bytes (UTF-8) */
    size_t tokcap;
    uint16_t *u16; /* Porter work buffer (UTF-16 units) */
    size_t u16cap;
    char *stem;
    size_t stemcap;
    /* chain state for qr_analyzer_run */
    qr_term_fn fn;
    void *user;
};

int qr_analyzer_create(qr_analyzer **out)
{
    qr_analyzer *a = calloc(1, sizeof *a);
    if (!a)
        return qr_fail(QR_ENOMEM, "analyzer: create");
    *out = a;
    return 0;
}

void qr_analyzer_destroy(qr_analyzer *a)
{
    if (!a)
        return;
    free(a->cp);
    free(a->cls);
    free(a->tok);
    free(a->u16);
    free(a->stem);
    free(a);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q)
        return qr_fail(QR_ENOMEM, "analyzer: %zu elements", n);
    *p = q;
    *cap = n;
    return 0;
}

/* ---- Word_Break property ---- */

static bool in_ranges(int32_t c, const int32_t (*r)[2], size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (c >= r[i][0] && c <= r[i][1])
            return true;
    return false;
}

static const int32_t han_ranges[][2] = {
    {0x2E80, 0x2FDF}, {0x3005, 0x3007}, {0x3021, 0x3029}, {0x3038, 0x303B}, {0x3400, 0x4DBF},
    {0x4E00, 0x9FFF}, {0xF900, 0xFAFF}, {0x20000, 0x3134F},
};
static const int32_t sea_ranges[][2] = {
    {0x0E00, 0x0EFF}, /* Thai, Lao */
    {0x1000, 0x109F}, /* Myanmar */
    {0x1780, 0x17FF}, /* Khmer */
    {0x1950, 0x19DF}, /* Tai Le, New Tai Lue */
    {0x1A20, 0x1AAF}, /* Tai Tham */
    {0xA9E0, 0xA9FF}, {0xAA60, 0xAADF}, /* Myanmar ext, Tai Viet */
};

/* Emoji=Yes code points below U+1F000 (emoji-data.txt), without # * 0-9.
 * Lucene emits a \p{Emoji} character as a token whatever its default
 * presentation (so (c), (R), TM count). Above U+1F000 Extended_Pictographic is
 * used, which matches Emoji=Yes on assigned characters. */
static const int32_t emoji_bmp[][2] = {
    {0x00A9, 0x00A9}, {0x00AE, 0x00AE}, {0x203C, 0x203C}, {0x2049, 0x2049}, {0x2122, 0x2122}, {0x2139, 0x2139},
    {0x2194, 0x2199}, {0x21A9, 0x21AA}, {0x231A, 0x231B}, {0x2328, 0x2328}, {0x23CF, 0x23CF}, {0x23E9, 0x23F3},
    {0x23F8, 0x23FA}, {0x24C2, 0x24C2}, {0x25AA, 0x25AB}, {0x25B6, 0x25B6}, {0x25C0, 0x25C0}, {0x25FB, 0x25FE},
    {0x2600, 0x2604}, {0x260E, 0x260E}, {0x2611, 0x2611}, {0x2614, 0x2615}, {0x2618, 0x2618}, {0x261D, 0x261D},
    {0x2620, 0x2620}, {0x2622, 0x2623}, {0x2626, 0x2626}, {0x262A, 0x262A}, {0x262E, 0x262F}, {0x2638, 0x263A},
    {0x2640, 0x2640}, {0x2642, 0x2642}, {0x2648, 0x2653}, {0x265F, 0x2660}, {0x2663, 0x2663}, {0x2665, 0x2666},
    {0x2668, 0x2668}, {0x267B, 0x267B}, {0x267E, 0x267F}, {0x2692, 0x2697}, {0x2699, 0x2699}, {0x269B, 0x269C},
    {0x26A0, 0x26A1}, {0x26A7, 0x26A7}, {0x26AA, 0x26AB}, {0x26B0, 0x26B1}, {0x26BD, 0x26BE}, {0x26C4, 0x26C5},
    {0x26C8, 0x26C8}, {0x26CE, 0x26CF}, {0x26D1, 0x26D1}, {0x26D3, 0x26D4}, {0x26E9, 0x26EA}, {0x26F0, 0x26F5},
    {0x26F7, 0x26FA}, {0x26FD, 0x26FD}, {0x2702, 0x2702}, {0x2705, 0x2705}, {0x2708, 0x270D}, {0x270F, 0x270F},
    {0x2712, 0x2712}, {0x2714, 0x2714}, {0x2716, 0x2716}, {0x271D, 0x271D}, {0x2721, 0x2721}, {0x2728, 0x2728},
    {0x2733, 0x2734}, {0x2744, 0x2744}, {0x2747, 0x2747}, {0x274C, 0x274C}, {0x274E, 0x274E}, {0x2753, 0x2755},
    {0x2757, 0x2757}, {0x2763, 0x2764}, {0x2795, 0x2797}, {0x27A1, 0x27A1}, {0x27B0, 0x27B0}, {0x27BF, 0x27BF},
    {0x2934, 0x2935}, {0x2B05, 0x2B07}, {0x2B1B, 0x2B1C}, {0x2B50, 0x2B50}, {0x2B55, 0x2B55}, {0x3030, 0x3030},
    {0x303D, 0x303D}, {0x3297, 0x3297}, {0x3299, 0x3299},
};

static int wb_class(int32_t c)
{
    /* ASCII fast path */
    if (c < 0x80) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
            return WB_ALETTER;
        if (c >= '0' && c <= '9')
            return WB_NUMERIC;
        switch (c) {
        case '\r': return WB_CR;
        case '\n': return WB_LF;
        case 0x0B: case 0x0C: return WB_NEWLINE;
        case '\'': return WB_SQ;
        case '"': return WB_DQ;
        case '.': return WB_MIDNUMLET;
        case ':': return WB_MIDLETTER;
        case ',': case ';': return WB_MIDNUM;
        case '_': return WB_EXTENDNUMLET;
        default: return WB_OTHER;
        }
    }
    switch (c) {
    case 0x85: case 0x2028: case 0x2029: return WB_NEWLINE;
    case 0x200D: return WB_ZWJ;
    case 0x2018: case 0x2019: case 0x2024: case 0xFE52: case 0xFF07: case 0xFF0E: return WB_MIDNUMLET;
    case 0x00B7: case 0x0387: case 0x055F: case 0x05F4: case 0x2027: case 0xFE13: case 0xFE55: case 0xFF1A:
        return WB_MIDLETTER;
    case 0x037E: case 0x0589: case 0x060C: case 0x060D: case 0x066C: case 0x07F8: case 0x2044: case 0xFE10:
    case 0xFE14: case 0xFE50: case 0xFE54: case 0xFF0C: case 0xFF1B:
        return WB_MIDNUM;
    case 0x066B: return WB_NUMERIC;
    case 0x202F: return WB_EXTENDNUMLET;
    case 0x3031: case 0x3032: case 0x3033: case 0x3034: case 0x3035: case 0x309B: case 0x309C: case 0x30A0:
    case 0x30FC: case 0xFF70:
        return WB_KATAKANA;
    default: break;
    }
    const utf8proc_property_t *p = utf8proc_get_property(c);
    if (p->boundclass == UTF8PROC_BOUNDCLASS_REGIONAL_INDICATOR)
        return WB_RI;
    if (p->boundclass == UTF8PROC_BOUNDCLASS_EXTEND || p->boundclass == UTF8PROC_BOUNDCLASS_SPACINGMARK ||
        p->boundclass == UTF8PROC_BOUNDCLASS_E_MODIFIER) {
        if (in_ranges(c, sea_ranges, sizeof sea_ranges / sizeof sea_ranges[0]))
            return WB_SEA;
        return WB_EXTEND;
    }
    int cat = p->category;
    switch (cat) {
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_MC:
        if (in_ranges(c, sea_ranges, sizeof sea_ranges / sizeof sea_ranges[0]))
            return WB_SEA;
        return WB_EXTEND;
    case UTF8PROC_CATEGORY_CF:
        if (c == 0x200B)
            return WB_OTHER;
        if (c == 0x200C)
            return WB_EXTEND;
        return WB_FORMAT;
    case UTF8PROC_CATEGORY_ND:
        /* Lucene adds the fullwidth digits (Halfwidth and Fullwidth Forms & Nd) */
        return WB_NUMERIC;
    case UTF8PROC_CATEGORY_PC:
        return WB_EXTENDNUMLET;
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_NL:
        if ((c >= 0x30A0 && c <= 0x30FF) || (c >= 0x31F0 && c <= 0x31FF) || (c >= 0x32D0 && c <= 0x32FE) ||
            (c >= 0x3300 && c <= 0x3357) || (c >= 0xFF66 && c <= 0xFF9D))
            return WB_KATAKANA;
        if (c >= 0x3040 && c <= 0x309F)
            return WB_HIRAGANA;
        if (in_ranges(c, han_ranges, sizeof han_ranges / sizeof han_ranges[0]))
            return WB_IDEO;
        if (in_ranges(c, sea_ranges, sizeof sea_ranges / sizeof sea_ranges[0]))
            return WB_SEA;
        if (c >= 0x05D0 && c <= 0x05F2 && cat == UTF8PROC_CATEGORY_LO)
            return WB_HEBREW;
        if (c >= 0xFB1D && c <= 0xFB4F && cat == UTF8PROC_CATEGORY_LO)
            return WB_HEBREW;
        return WB_ALETTER;
    default:
        break;
    }
    if (c < 0x1F000) {
        if (in_ranges(c, emoji_bmp, sizeof emoji_bmp / sizeof emoji_bmp[0]))
            return WB_EMOJI;
    } else if (p->boundclass == UTF8PROC_BOUNDCLASS_EXTENDED_PICTOGRAPHIC ||
               p->boundclass == UTF8PROC_BOUNDCLASS_E_BASE || p->boundclass == UTF8PROC_BOUNDCLASS_E_BASE_GAZ ||
               p->boundclass == UTF8PROC_BOUNDCLASS_GLUE_AFTER_ZWJ) {
        return WB_EMOJI;
    }
    if (p->boundclass == UTF8PROC_BOUNDCLASS_E_MODIFIER)
        return WB_EXTEND;
    return WB_OTHER;
}

/* ---- UTF-8 ---- */

static uint8_t ascii_cls[0x80];
static pthread_once_t ascii_once = PTHREAD_ONCE_INIT;

static void ascii_init(void)
{
    for (int c = 0; c < 0x80; c++)
        ascii_cls[c] = (uint8_t)wb_class(c);
}

/* Decodes text into a->cp / a->cls; invalid bytes become U+FFFD. */
static int decode(qr_analyzer *a, const char *text, size_t len, size_t *n_out)
{
    int rc = grow((void **)&a->cp, &a->cap, len + 1, sizeof(int32_t));
    if (rc)
        return rc;
    rc = grow((void **)&a->cls, &a->clscap, len + 1, 1);
    if (rc)
        return rc;
    pthread_once(&ascii_once, ascii_init); /* analyzers run in many threads (serve) */
    size_t n = 0, i = 0;
    const uint8_t *s = (const uint8_t *)text;
    while (i < len) {
        int32_t c;
        if (s[i] < 0x80) {
            c = s[i++];
            a->cp[n] = c;
            a->cls[n] = ascii_cls[c];
            n++;
            continue;
        } else {
            utf8proc_ssize_t k = utf8proc_iterate(s + i, (utf8proc_ssize_t)(len - i), &c);
            if (k <= 0) {
                c = 0xFFFD;
                k = 1;
            }
            i += (size_t)k;
        }
        a->cp[n] = c;
        a->cls[n] = (uint8_t)wb_class(c);
        n++;
    }
    *n_out = n;
    return 0;
}

static size_t put_utf8(char *dst, int32_t c)
{
    return (size_t)utf8proc_encode_char(c, (utf8proc_uint8_t *)dst);
}

/* ---- StandardTokenizer ---- */

static bool is_ahl(int c) { return c == WB_ALETTER || c == WB_HEBREW; }
static bool is_midlq(int c) { return c == WB_MIDLETTER || c == WB_MIDNUMLET || c == WB_SQ; }
static bool is_midnq(int c) { return c == WB_MIDNUM || c == WB_MIDNUMLET || c == WB_SQ; }
static bool is_ignorable(int c) { return c == WB_EXTEND || c == WB_FORMAT || c == WB_ZWJ; }

/* A unit: one base character and the Extend/Format/ZWJ characters after it
 * (rule WB4). units[i] = index of its base in cp[]; the unit ends where the
 * next begins. */
typedef struct {
    size_t start, end; /* [start, end) in cp[] */
    int cls;
    bool zwj_end;   /* last ignorable is ZWJ (WB3c) */
} unit;

static int emit_segment(qr_analyzer *a, size_t s, size_t e, qr_term_fn fn, void *user)
{
    /* Splits at QR_ANALYZER_MAX_TOKEN UTF-16 units, never inside a character. */
    size_t i = s;
    while (i < e) {
        size_t units = 0, bytes = 0;
        size_t j = i;
        while (j < e) {
            size_t w = a->cp[j] > 0xFFFF ? 2 : 1;
            if (units + w > QR_ANALYZER_MAX_TOKEN)
                break;
            units += w;
            j++;
        }
        int rc = grow((void **)&a->tok, &a->tokcap, (j - i) * 4 + 1, 1);
        if (rc)
            return rc;
        for (size_t t = i; t < j; t++) {
            if (a->cp[t] < 0x80)
                a->tok[bytes++] = (char)a->cp[t];
            else
                bytes += put_utf8(a->tok + bytes, a->cp[t]);
        }
        a->tok[bytes] = 0;
        rc = fn(a->tok, bytes, user);
        if (rc)
            return rc;
        i = j;
    }
    return 0;
}

static bool is_word_unit(const qr_analyzer *a, const unit *u)
{
    switch (u->cls) {
    case WB_ALETTER: case WB_HEBREW: case WB_NUMERIC: case WB_KATAKANA: case WB_IDEO: case WB_HIRAGANA:
    case WB_SEA: case WB_EMOJI:
        return true;
    default:
        return false;
    }
}

int qr_analyzer_tokenize(qr_analyzer *a, const char *text, size_t len, qr_term_fn fn, void *user)
{
    if (len > QR_ANALYZER_MAX_TEXT)
        return qr_fail(QR_ELIMIT, "analyzer: text of %zu bytes exceeds %zu", len, QR_ANALYZER_MAX_TEXT);
    size_t n = 0;
    int rc = decode(a, text, len, &n);
    if (rc)
        return rc;
    /* Build units lazily with a small window: we need z (before a), a, b, c. */
    size_t pos = 0;
#define NEXT_UNIT(u)                                                                         \
    do {                                                                                     \
        (u).start = pos;                                                                     \
        (u).cls = a->cls[pos];                                                               \
        (u).zwj_end = false;                                                                 \
        pos++;                                                                               \
        if ((u).cls != WB_CR && (u).cls != WB_LF && (u).cls != WB_NEWLINE) {                 \
            while (pos < n && is_ignorable(a->cls[pos])) {                                   \
                (u).zwj_end = a->cls[pos] == WB_ZWJ;                                         \
                pos++;                                                                       \
            }                                                                                \
        }                                                                                    \
        (u).end = pos;                                                                       \
    } while (0)

    /* Segment state */
    size_t seg_start = 0;
    bool seg_word = false;
    int ri_run = 0; /* regional indicators in the current run */
    unit z = {0}, ua = {0}, ub = {0}, uc = {0};
    bool has_z = false, has_c = false;
    if (n == 0)
        return 0;
    NEXT_UNIT(ua);
    seg_start = ua.start;
    seg_word = is_word_unit(a, &ua);
    ri_run = ua.cls == WB_RI ? 1 : 0;
    int seg_ri = ri_run;
    if (pos < n) {
        NEXT_UNIT(ub);
        if (pos < n) {
            NEXT_UNIT(uc);
            has_c = true;
        }
    } else {
        goto last;
    }
    for (;;) {
        /* Decide whether there is a break between ua and ub. */
        int A = ua.cls, B = ub.cls, C = has_c ? uc.cls : -1, Z = has_z ? z.cls : -1;
        bool join = false;
        if (A == WB_CR && B == WB_LF)
            join = false; /* CR LF is one unit but never a token; breaking changes nothing */
        else if (A == WB_CR || A == WB_LF || A == WB_NEWLINE || B == WB_CR || B == WB_LF || B == WB_NEWLINE)
            join = false;
        else if (A == WB_EMOJI && ua.zwj_end && B == WB_EMOJI)
            join = true; /* WB3c, within an emoji ZWJ sequence as Lucene's emoji rule */
        else if (is_ahl(A) && is_ahl(B))
            join = true; /* WB5 */
        else if (is_ahl(A) && is_midlq(B) && is_ahl(C))
            join = true; /* WB6 */
        else if (is_ahl(Z) && is_midlq(A) && is_ahl(B))
            join = true; /* WB7 */
        else if (A == WB_HEBREW && B == WB_SQ)
            join = true; /* WB7a */
        else if (A == WB_HEBREW && B == WB_DQ && C == WB_HEBREW)
            join = true; /* WB7b */
        else if (Z == WB_HEBREW && A == WB_DQ && B == WB_HEBREW)
            join = true; /* WB7c */
        else if ((A == WB_NUMERIC || is_ahl(A)) && (B == WB_NUMERIC || is_ahl(B)))
            join = true; /* WB8, WB9, WB10 */
        else if (Z == WB_NUMERIC && is_midnq(A) && B == WB_NUMERIC)
            join = true; /* WB11 */
        else if (A == WB_NUMERIC && is_midnq(B) && C == WB_NUMERIC)
            join = true; /* WB12 */
        else if (A == WB_KATAKANA && B == WB_KATAKANA)
            join = true; /* WB13 */
        else if ((is_ahl(A) || A == WB_NUMERIC || A == WB_KATAKANA || A == WB_EXTENDNUMLET) && B == WB_EXTENDNUMLET)
            join = true; /* WB13a */
        else if (A == WB_EXTENDNUMLET && (is_ahl(B) || B == WB_NUMERIC || B == WB_KATAKANA))
            join = true; /* WB13b */
        else if (A == WB_RI && B == WB_RI && (ri_run & 1))
            join = true; /* WB15/16 */
        else if (A == WB_SEA && B == WB_SEA)
            join = true; /* Lucene: a complex-context run is one token */

        if (!join) {
            if (seg_word || seg_ri >= 2) {
                rc = emit_segment(a, seg_start, ua.end, fn, user);
                if (rc)
                    return rc;
            }
            seg_start = ub.start;
            seg_word = false;
            seg_ri = 0;
        }
        if (is_word_unit(a, &ub))
            seg_word = true;
        if (B == WB_RI) {
            ri_run = A == WB_RI ? ri_run + 1 : 1;
            seg_ri++;
        } else {
            ri_run = 0;
        }
        /* slide */
        z = ua;
        has_z = true;
        ua = ub;
        if (!has_c)
            break;
        ub = uc;
        if (pos < n) {
            NEXT_UNIT(uc);
        } else {
            has_c = false;
        }
    }
last:
    if (seg_word || seg_ri >= 2)
        return emit_segment(a, seg_start, ua.end, fn, user);
    return 0;
#undef NEXT_UNIT
}

/* ---- stop words ---- */

/* Lucene's English stop set (33 words), by length: each string holds the
 * words of one length back to back, so a term is compared with at most 14
 * of them (this runs for every word analyzed, at ingest and for MMR). */
static const char *const stop_by_len[6] = {
    NULL,
    "a",
    "anasatbebyifinisitnoofonorto",
    "andarebutfornotthewas",
    "intosuchthatthentheythiswillwith",
    "theirtherethese",
};

bool qr_english_stopword(const char *t, size_t len)
{
    if (len < 1 || len > 5)
        return false;
    const char *w = stop_by_len[len];
    for (; *w; w += len)
        if (w[0] == t[0] && memcmp(w, t, len) == 0)
            return true;
    return false;
}

/* ---- Porter stemmer (on UTF-16 units, as Lucene's char[] version) ---- */

typedef struct {
    uint16_t *b;
    int k, k0, j;
} porter;

static bool p_cons(const porter *p, int i)
{
    switch (p->b[i]) {
    case 'a': case 'e': case 'i': case 'o': case 'u': return false;
    case 'y': return i == p->k0 ? true : !p_cons(p, i - 1);
    default: return true;
    }
}

/* number of VC sequences in b[k0..j] */
static int p_m(const porter *p)
{
    int n = 0, i = p->k0;
    for (;;) {
        if (i > p->j)
            return n;
        if (!p_cons(p, i))
            break;
        i++;
    }
    i++;
    for (;;) {
        for (;;) {
            if (i > p->j)
                return n;
            if (p_cons(p, i))
                break;
            i++;
        }
        i++;
        n++;
        for (;;) {
            if (i > p->j)
                return n;
            if (!p_cons(p, i))
                break;
            i++;
        }
        i++;
    }
}

static bool p_vowelinstem(const porter *p)
{
    for (int i = p->k0; i <= p->j; i++)
        if (!p_cons(p, i))
            return true;
    return false;
}

static bool p_doublec(const porter *p, int j)
{
    if (j < p->k0 + 1)
        return false;
    if (p->b[j] != p->b[j - 1])
        return false;
    return p_cons(p, j);
}

static bool p_cvc(const porter *p, int i)
{
    if (i < p->k0 + 2 || !p_cons(p, i) || p_cons(p, i - 1) || !p_cons(p, i - 2))
        return false;
    int ch = p->b[i];
    return !(ch == 'w' || ch == 'x' || ch == 'y');
}

static bool p_ends(porter *p, const char *s)
{
    int l = (int)strlen(s);
    int o = p->k - l + 1;
    if (o < p->k0)
        return false;
    for (int i = 0; i < l; i++)
        if (p->b[o + i] != (uint16_t)s[i])
            return false;
    p->j = p->k - l;
    return true;
}

static void p_setto(porter *p, const char *s)
{
    int l = (int)strlen(s);
    int o = p->j + 1;
    for (int i = 0; i < l; i++)
        p->b[o + i] = (uint16_t)s[i];
    p->k = p->j + l;
}

static void p_r(porter *p, const char *s)
{
    if (p_m(p) > 0)
        p_setto(p, s);
}

/* plurals and -ed/-ing */
static void p_step1(porter *p)
{
    if (p->b[p->k] == 's') {
        if (p_ends(p, "sses"))
            p->k -= 2;
        else if (p_ends(p, "ies"))
            p_setto(p, "i");
        else if (p->b[p->k - 1] != 's')
            p->k--;
    }
    if (p_ends(p, "eed")) {
        if (p_m(p) > 0)
            p->k--;
    } else if ((p_ends(p, "ed") || p_ends(p, "ing")) && p_vowelinstem(p)) {
        p->k = p->j;
        if (p_ends(p, "at"))
            p_setto(p, "ate");
        else if (p_ends(p, "bl"))
            p_setto(p, "ble");
        else if (p_ends(p, "iz"))
            p_setto(p, "ize");
        else if (p_doublec(p, p->k)) {
            int ch = p->b[p->k--];
            if (ch == 'l' || ch == 's' || ch == 'z')
                p->k++;
        } else if (p_m(p) == 1 && p_cvc(p, p->k))
            p_setto(p, "e");
    }
}

/* terminal y -> i when there is another vowel in the stem */
static void p_step2(porter *p)
{
    if (p_ends(p, "y") && p_vowelinstem(p))
        p->b[p->k] = 'i';
}

/* double suffixes -> single ones */
static void p_step3(porter *p)
{
    if (p->k == p->k0)
        return;
    switch (p->b[p->k - 1]) {
    case 'a':
        if (p_ends(p, "ational")) { p_r(p, "ate"); break; }
        if (p_ends(p, "tional")) { p_r(p, "tion"); break; }
        break;
    case 'c':
        if (p_ends(p, "enci")) { p_r(p, "ence"); break; }
        if (p_ends(p, "anci")) { p_r(p, "ance"); break; }
        break;
    case 'e':
        if (p_ends(p, "izer")) { p_r(p, "ize"); break; }
        break;
    case 'l':
        if (p_ends(p, "bli")) { p_r(p, "ble"); break; }
        if (p_ends(p, "alli")) { p_r(p, "al"); break; }
        if (p_ends(p, "entli")) { p_r(p, "ent"); break; }
        if (p_ends(p, "eli")) { p_r(p, "e"); break; }
        if (p_ends(p, "ousli")) { p_r(p, "ous"); break; }
        break;
    case 'o':
        if (p_ends(p, "ization")) { p_r(p, "ize"); break; }
        if (p_ends(p, "ation")) { p_r(p, "ate"); break; }
        if (p_ends(p, "ator")) { p_r(p, "ate"); break; }
        break;
    case 's':
        if (p_ends(p, "alism")) { p_r(p, "al"); break; }
        if (p_ends(p, "iveness")) { p_r(p, "ive"); break; }
        if (p_ends(p, "fulness")) { p_r(p, "ful"); break; }
        if (p_ends(p, "ousness")) { p_r(p, "ous"); break; }
        break;
    case 't':
        if (p_ends(p, "aliti")) { p_r(p, "al"); break; }
        if (p_ends(p, "iviti")) { p_r(p, "ive"); break; }
        if (p_ends(p, "biliti")) { p_r(p, "ble"); break; }
        break;
    case 'g':
        if (p_ends(p, "logi")) { p_r(p, "log"); break; }
        break;
    default:
        break;
    }
}

/* -ic-, -full, -ness etc. */
static void p_step4(porter *p)
{
    switch (p->b[p->k]) {
    case 'e':
        if (p_ends(p, "icate")) { p_r(p, "ic"); break; }
        if (p_ends(p, "ative")) { p_r(p, ""); break; }
        if (p_ends(p, "alize")) { p_r(p, "al"); break; }
        break;
    case 'i':
        if (p_ends(p, "iciti")) { p_r(p, "ic"); break; }
        break;
    case 'l':
        if (p_ends(p, "ical")) { p_r(p, "ic"); break; }
        if (p_ends(p, "ful")) { p_r(p, ""); break; }
        break;
    case 's':
        if (p_ends(p, "ness")) { p_r(p, ""); break; }
        break;
    default:
        break;
    }
}

/* -ant, -ence etc. in context <c>vcvc<v> */
static void p_step5(porter *p)
{
    if (p->k == p->k0)
        return;
    switch (p->b[p->k - 1]) {
    case 'a':
        if (p_ends(p, "al")) break;
        return;
    case 'c':
        if (p_ends(p, "ance")) break;
        if (p_ends(p, "ence")) break;
        return;
    case 'e':
        if (p_ends(p, "er")) break;
        return;
    case 'i':
        if (p_ends(p, "ic")) break;
        return;
    case 'l':
        if (p_ends(p, "able")) break;
        if (p_ends(p, "ible")) break;
        return;
    case 'n':
        if (p_ends(p, "ant")) break;
        if (p_ends(p, "ement")) break;
        if (p_ends(p, "ment")) break;
        if (p_ends(p, "ent")) break;
        return;
    case 'o':
        if (p_ends(p, "ion") && p->j >= p->k0 && (p->b[p->j] == 's' || p->b[p->j] == 't')) break;
        if (p_ends(p, "ou")) break;
        return;
    case 's':
        if (p_ends(p, "ism")) break;
        return;
    case 't':
        if (p_ends(p, "ate")) break;
        if (p_ends(p, "iti")) break;
        return;
    case 'u':
        if (p_ends(p, "ous")) break;
        return;
    case 'v':
        if (p_ends(p, "ive")) break;
        return;
    case 'z':
        if (p_ends(p, "ize")) break;
        return;
    default:
        return;
    }
    if (p_m(p) > 1)
        p->k = p->j;
}

/* final -e and -ll */
static void p_step6(porter *p)
{
    p->j = p->k;
    if (p->b[p->k] == 'e') {
        int a = p_m(p);
        if (a > 1 || (a == 1 && !p_cvc(p, p->k - 1)))
            p->k--;
    }
    if (p->b[p->k] == 'l' && p_doublec(p, p->k) && p_m(p) > 1)
        p->k--;
}

/* Stems b[0..n) in place; returns the new length. */
static int porter_stem16(uint16_t *b, int n)
{
    porter p = {b, n - 1, 0, 0};
    if (p.k > p.k0 + 1) {
        p_step1(&p);
        p_step2(&p);
        p_step3(&p);
        p_step4(&p);
        p_step5(&p);
        p_step6(&p);
    }
    return p.k + 1;
}

static size_t stem_into(qr_analyzer *a, const char *word, size_t len, char *out, size_t cap, uint16_t *u16)
{
    (void)a;
    /* UTF-8 -> UTF-16 units */
    int n = 0;
    size_t i = 0;
    const uint8_t *s = (const uint8_t *)word;
    bool ascii = true;
    while (i < len) {
        int32_t c;
        if (s[i] < 0x80) {
            c = s[i++];
        } else {
            ascii = false;
            utf8proc_ssize_t k = utf8proc_iterate(s + i, (utf8proc_ssize_t)(len - i), &c);
            if (k <= 0) {
                c = 0xFFFD;
                k = 1;
            }
            i += (size_t)k;
        }
        if (c > 0xFFFF) {
            c -= 0x10000;
            u16[n++] = (uint16_t)(0xD800 + (c >> 10));
            u16[n++] = (uint16_t)(0xDC00 + (c & 0x3FF));
        } else {
            u16[n++] = (uint16_t)c;
        }
    }
    int m = porter_stem16(u16, n);
    size_t o = 0;
    if (ascii) {
        if ((size_t)m + 1 > cap)
            return 0;
        for (int t = 0; t < m; t++)
            out[o++] = (char)u16[t];
    } else {
        for (int t = 0; t < m; t++) {
            int32_t c = u16[t];
            if (c >= 0xD800 && c < 0xDC00 && t + 1 < m && u16[t + 1] >= 0xDC00 && u16[t + 1] < 0xE000) {
                c = 0x10000 + ((c - 0xD800) << 10) + (u16[t + 1] - 0xDC00);
                t++;
            } else if (c >= 0xD800 && c < 0xE000) {
                c = 0xFFFD;
            }
            if (o + 4 + 1 > cap)
                return 0;
            o += put_utf8(out + o, c);
        }
    }
    out[o] = 0;
    return o;
}

size_t qr_porter_stem(const char *word, size_t len, char *out, size_t cap)
{
    if (cap < len + 1)
        return 0;
    uint16_t stackbuf[512];
    uint16_t *u16 = len <= 512 ? stackbuf : malloc(len * sizeof(uint16_t));
    if (!u16)
        return 0;
    size_t r = stem_into(NULL, word, len, out, cap, u16);
    if (u16 != stackbuf)
        free(u16);
    return r;
}

/* ---- the chain ---- */

static int chain_fn(const char *tok, size_t len, void *user)
{
    qr_analyzer *a = user;
    /* token (UTF-8, <= 255 UTF-16 units) -> possessive -> lower case into a->stem */
    size_t cap_need = len * 2 + 8; /* lower-casing may change byte lengths slightly */
    int rc = grow((void **)&a->stem, &a->stemcap, cap_need * 2, 1);
    if (rc)
        return rc;
    rc = grow((void **)&a->u16, &a->u16cap, cap_need, sizeof(uint16_t));
    if (rc)
        return rc;
    /* EnglishPossessiveFilter: trailing ('|’|＇)(s|S) */
    if (len >= 2 && (tok[len - 1] == 's' || tok[len - 1] == 'S')) {
        if (tok[len - 2] == '\'')
            len -= 2;
        else if (len >= 4 && (uint8_t)tok[len - 4] == 0xE2 && (uint8_t)tok[len - 3] == 0x80 &&
                 (uint8_t)tok[len - 2] == 0x99)
            len -= 4; /* U+2019 */
        else if (len >= 4 && (uint8_t)tok[len - 4] == 0xEF && (uint8_t)tok[len - 3] == 0xBC &&
                 (uint8_t)tok[len - 2] == 0x87)
            len -= 4; /* U+FF07 */
    }
    if (len == 0)
        return 0;
    /* LowerCaseFilter */
    char *low = a->stem;
    size_t half = a->stemcap / 2;
    size_t o = 0;
    const uint8_t *s = (const uint8_t *)tok;
    for (size_t i = 0; i < len;) {
        int32_t c;
        if (s[i] < 0x80) {
            c = s[i++];
            if (c >= 'A' && c <= 'Z')
                c += 32;
            low[o++] = (char)c;
            continue;
        }
        utf8proc_ssize_t k = utf8proc_iterate(s + i, (utf8proc_ssize_t)(len - i), &c);
        if (k <= 0) {
            c = 0xFFFD;
            k = 1;
        }
        i += (size_t)k;
        c = utf8proc_tolower(c);
        if (o + 4 >= half)
            return qr_fail(QR_EINTERNAL, "analyzer: lower-case buffer");
        o += put_utf8(low + o, c);
    }
    low[o] = 0;
    /* StopFilter */
    if (qr_english_stopword(low, o))
        return 0;
    /* PorterStemFilter */
    char *out = a->stem + half;
    size_t m = stem_into(a, low, o, out, half, a->u16);
    if (m == 0)
        return qr_fail(QR_EINTERNAL, "analyzer: stem buffer");
    return a->fn(out, m, a->user);
}

int qr_analyzer_run(qr_analyzer *a, const char *text, size_t len, qr_term_fn fn, void *user)
{
    a->fn = fn;
    a->user = user;
    return qr_analyzer_tokenize(a, text, len, chain_fn, a);
}
