/* Jinja2 subset interpreter; semantics of Python jinja2 as transformers sets it up (see jinja.h).
 *
 * Structure: preprocess (trim_blocks, lstrip_blocks, one trailing newline)
 * -> tokens -> AST (arena) -> tree-walking renderer. Errors inside the lexer,
 * parser and renderer longjmp to the entry point; every allocation they make
 * lives in an arena that the entry point frees, so unwinding leaks nothing. */
#include "generate/jinja.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <utf8proc.h>

#include "common/error.h"

/* ---------------------------------------------------------------- arena */

typedef struct blk {
    struct blk *next;
    size_t used, cap;
    max_align_t data[];
} blk;

typedef struct {
    blk *head;
} arena;

static void arena_free(arena *a)
{
    blk *b = a->head;
    while (b) {
        blk *n = b->next;
        free(b);
        b = n;
    }
    a->head = NULL;
}

/* Error context shared by lexer, parser and renderer. */
typedef struct {
    jmp_buf jb;
    int code;
    char msg[1024];
    arena *ar;
    const char *orig; /* original source, for line:col */
    const size_t *map; /* preprocessed offset -> original offset */
    size_t maplen;
} ectx;

static void linecol(const ectx *E, size_t pos, int *line, int *col)
{
    size_t o = E->map ? (pos < E->maplen ? E->map[pos] : (E->maplen ? E->map[E->maplen - 1] + 1 : 0)) : pos;
    int l = 1, c = 1;
    for (size_t i = 0; i < o && E->orig && E->orig[i]; i++) {
        if (E->orig[i] == '\n') {
            l++;
            c = 1;
        } else if (((unsigned char)E->orig[i] & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

__attribute__((noreturn, format(printf, 4, 5))) static void efail(ectx *E, int code, long pos, const char *fmt, ...)
{
    char tmp[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    E->code = code;
    if (pos >= 0) {
        int l, c;
        linecol(E, (size_t)pos, &l, &c);
        snprintf(E->msg, sizeof E->msg, "jinja: %d:%d: %s", l, c, tmp);
    } else {
        snprintf(E->msg, sizeof E->msg, "jinja: %s", tmp);
    }
    longjmp(E->jb, 1);
}

static void *aalloc(ectx *E, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    blk *b = E->ar->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        b = malloc(sizeof *b + cap);
        if (!b) {
            E->code = QR_ENOMEM;
            snprintf(E->msg, sizeof E->msg, "jinja: out of memory");
            longjmp(E->jb, 1);
        }
        b->cap = cap;
        b->used = 0;
        b->next = E->ar->head;
        E->ar->head = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

static char *astrdup(ectx *E, const char *s, size_t n)
{
    char *p = aalloc(E, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

/* Growable byte buffer (malloc'd; the owner frees it). */
typedef struct {
    char *p;
    size_t n, cap, limit;
} sbuf;

static void sb_put(ectx *E, sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        if (b->limit && b->n + n > b->limit)
            efail(E, QR_ELIMIT, -1, "output exceeds %zu bytes", b->limit);
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            E->code = QR_ENOMEM;
            snprintf(E->msg, sizeof E->msg, "jinja: out of memory");
            longjmp(E->jb, 1);
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}


/* ------------------------------------------------------ unicode helpers */

/* Length of the whitespace character at p (Python str.isspace(), which
 * str.strip() and the \\s of jinja2's whitespace control use), 0 if none. */
static size_t ws_at(const char *p, size_t n)
{
    unsigned char c = (unsigned char)p[0];
    if (n == 0)
        return 0;
    if (c == ' ' || (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x1f))
        return 1;
    if (c == 0xC2 && n >= 2 && ((unsigned char)p[1] == 0xA0 || (unsigned char)p[1] == 0x85))
        return 2;
    if (c == 0xE1 && n >= 3 && (unsigned char)p[1] == 0x9A && (unsigned char)p[2] == 0x80)
        return 3;
    if (c == 0xE2 && n >= 3) {
        unsigned char c1 = (unsigned char)p[1], c2 = (unsigned char)p[2];
        if (c1 == 0x80 && ((c2 >= 0x80 && c2 <= 0x8A) || c2 == 0xA8 || c2 == 0xA9 || c2 == 0xAF))
            return 3;
        if (c1 == 0x81 && c2 == 0x9F)
            return 3;
    }
    if (c == 0xE3 && n >= 3 && (unsigned char)p[1] == 0x80 && (unsigned char)p[2] == 0x80)
        return 3;
    return 0;
}

/* Length of a whitespace character ending at p+n, 0 if none. */
static size_t ws_before(const char *p, size_t n)
{
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        if (((unsigned char)p[n - k] & 0xC0) == 0x80)
            continue;
        return ws_at(p + n - k, k) == k ? k : 0;
    }
    return 0;
}

static void trim_js(const char **p, size_t *n, int left, int right)
{
    size_t k;
    if (left)
        while (*n && (k = ws_at(*p, *n))) {
            *p += k;
            *n -= k;
        }
    if (right)
        while (*n && (k = ws_before(*p, *n)))
            *n -= k;
}

/* Byte length of the UTF-8 sequence starting with c (1 for invalid bytes). */
static size_t u8len(unsigned char c)
{
    return c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
}

/* Length in UTF-16 code units, as JS String.length counts. */

/* ---------------------------------------------------------------- lexer */

enum {
    K_TEXT, K_NUM, K_STR, K_IDENT, K_EQUALS, K_LPAREN, K_RPAREN, K_OSTMT, K_CSTMT, K_OEXPR, K_CEXPR,
    K_LBRACK, K_RBRACK, K_LBRACE, K_RBRACE, K_COMMA, K_DOT, K_COLON, K_PIPE, K_ADD, K_MUL, K_POW,
    K_CMP, K_UNARY, K_COMMENT, K_EOF
};

typedef struct {
    int type;
    const char *s;
    size_t n;
    size_t pos;
} tok;

typedef struct {
    ectx *E;
    const char *src;
    size_t n, i;
    tok *t;
    size_t nt, cap;
} lexer;

static void push_tok(lexer *L, int type, const char *s, size_t n, size_t pos)
{
    if (L->nt == L->cap) {
        size_t cap = L->cap ? L->cap * 2 : 256;
        tok *t = aalloc(L->E, cap * sizeof *t);
        if (L->nt)
            memcpy(t, L->t, L->nt * sizeof *t);
        L->t = t;
        L->cap = cap;
    }
    L->t[L->nt++] = (tok){type, s, n, pos};
}

static int is_word(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* The exponent of a float literal (1e16, 2.5E-3), as jinja2's lexer reads it. */
static void lex_exponent(lexer *L)
{
    const char *s = L->src;
    size_t i = L->i;
    if (i < L->n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < L->n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i < L->n && is_digit(s[i])) {
            while (i < L->n && is_digit(s[i]))
                i++;
            L->i = i;
        }
    }
}

static void put_cp(sbuf *b, ectx *E, unsigned cp)
{
    char u[4];
    size_t k;
    if (cp < 0x80) {
        u[0] = (char)cp;
        k = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        k = 2;
    } else {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        k = 3;
    }
    sb_put(E, b, u, k);
}

/* String literal body up to the closing quote q, with escapes decoded. */
static void lex_string(lexer *L, char q)
{
    size_t start = L->i;
    sbuf b = {0};
    L->i++;
    while (L->i < L->n && L->src[L->i] != q) {
        char c = L->src[L->i];
        if (c == '\\') {
            L->i++;
            if (L->i >= L->n) {
                free(b.p);
                efail(L->E, QR_EFORMAT, (long)start, "unexpected end of input in string");
            }
            char e = L->src[L->i++];
            if (e == 'x' || e == 'u') {
                size_t len = e == 'x' ? 2 : 4;
                unsigned v = 0;
                for (size_t k = 0; k < len; k++) {
                    char h = L->i + k < L->n ? L->src[L->i + k] : 0;
                    int d = (h >= '0' && h <= '9') ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
                    if (d < 0) {
                        free(b.p);
                        efail(L->E, QR_EFORMAT, (long)L->i, "invalid hexadecimal escape sequence");
                    }
                    v = v * 16 + (unsigned)d;
                }
                L->i += len;
                put_cp(&b, L->E, v);
                continue;
            }
            const char *m = strchr("n\nt\tr\rb\bf\fv\v''\"\"\\\\", e);
            if (!m || ((m - "n\nt\tr\rb\bf\fv\v''\"\"\\\\") & 1)) {
                free(b.p);
                efail(L->E, QR_EFORMAT, (long)L->i - 2, "unexpected escaped character: %c", e);
            }
            sb_put(L->E, &b, m + 1, 1);
            continue;
        }
        sb_put(L->E, &b, &c, 1);
        L->i++;
    }
    if (L->i >= L->n) {
        free(b.p);
        efail(L->E, QR_EFORMAT, (long)start, "unterminated string literal");
    }
    L->i++;
    char *s = astrdup(L->E, b.p ? b.p : "", b.n);
    size_t n = b.n;
    free(b.p);
    push_tok(L, K_STR, s, n, start);
}

static void strip_trailing_ws(lexer *L)
{
    if (L->nt && L->t[L->nt - 1].type == K_TEXT) {
        tok *t = &L->t[L->nt - 1];
        trim_js(&t->s, &t->n, 0, 1);
        if (t->n == 0)
            L->nt--;
    }
}

static void skip_ws(lexer *L)
{
    size_t k;
    while (L->i < L->n && (k = ws_at(L->src + L->i, L->n - L->i)))
        L->i += k;
}

static const struct {
    const char *s;
    int type;
} MAPPING[] = {
    {"{%", K_OSTMT}, {"%}", K_CSTMT}, {"{{", K_OEXPR}, {"}}", K_CEXPR}, {"(", K_LPAREN}, {")", K_RPAREN},
    {"{", K_LBRACE}, {"}", K_RBRACE}, {"[", K_LBRACK}, {"]", K_RBRACK}, {",", K_COMMA}, {".", K_DOT},
    {":", K_COLON}, {"|", K_PIPE}, {"<=", K_CMP}, {">=", K_CMP}, {"==", K_CMP}, {"!=", K_CMP}, {"<", K_CMP},
    {">", K_CMP}, {"+", K_ADD}, {"-", K_ADD}, {"~", K_ADD}, {"**", K_POW}, {"*", K_MUL}, {"//", K_MUL},
    {"/", K_MUL}, {"%", K_MUL}, {"=", K_EQUALS},
};

static void lex(lexer *L)
{
    int depth = 0;
    const char *s = L->src;
    while (L->i < L->n) {
        int last = L->nt ? L->t[L->nt - 1].type : -1;
        if (last == -1 || last == K_CSTMT || last == K_CEXPR || last == K_COMMENT) {
            size_t st = L->i;
            while (L->i < L->n && !(s[L->i] == '{' && L->i + 1 < L->n && (s[L->i + 1] == '%' || s[L->i + 1] == '{' || s[L->i + 1] == '#')))
                L->i++;
            if (L->i > st) {
                push_tok(L, K_TEXT, s + st, L->i - st, st);
                continue;
            }
        }
        if (s[L->i] == '{' && L->i + 1 < L->n && s[L->i + 1] == '#') {
            size_t st = L->i;
            L->i += 2;
            int before = L->i < L->n && s[L->i] == '-';
            if (before)
                L->i++;
            size_t cs = L->i;
            while (!(L->i + 1 < L->n && s[L->i] == '#' && s[L->i + 1] == '}')) {
                if (L->i + 2 >= L->n)
                    efail(L->E, QR_EFORMAT, (long)st, "missing end of comment tag");
                L->i++;
            }
            int after = L->i > cs && s[L->i - 1] == '-';
            if (before)
                strip_trailing_ws(L);
            push_tok(L, K_COMMENT, s + cs, L->i - cs - (size_t)after, st);
            L->i += 2;
            if (after)
                skip_ws(L);
            continue;
        }
        if (L->n - L->i >= 3 && !memcmp(s + L->i, "{%-", 3)) {
            strip_trailing_ws(L);
            push_tok(L, K_OSTMT, "{%", 2, L->i);
            L->i += 3;
            continue;
        }
        if (L->n - L->i >= 3 && !memcmp(s + L->i, "{%+", 3)) { /* lstrip_blocks off (handled in preprocess) */
            push_tok(L, K_OSTMT, "{%", 2, L->i);
            L->i += 3;
            continue;
        }
        if (L->n - L->i >= 3 && !memcmp(s + L->i, "{{-", 3)) {
            strip_trailing_ws(L);
            push_tok(L, K_OEXPR, "{{", 2, L->i);
            depth = 0;
            L->i += 3;
            continue;
        }
        skip_ws(L);
        if (L->i >= L->n)
            break;
        if (L->n - L->i >= 3 && !memcmp(s + L->i, "-%}", 3)) {
            push_tok(L, K_CSTMT, "%}", 2, L->i);
            L->i += 3;
            skip_ws(L);
            continue;
        }
        if (L->n - L->i >= 3 && !memcmp(s + L->i, "-}}", 3)) {
            push_tok(L, K_CEXPR, "}}", 2, L->i);
            L->i += 3;
            skip_ws(L);
            continue;
        }
        char c = s[L->i];
        if (c == '-' || c == '+') {
            int lt = L->nt ? L->t[L->nt - 1].type : -1;
            if (lt == K_TEXT || lt == -1)
                efail(L->E, QR_EFORMAT, (long)L->i, "unexpected character: %c", c);
            if (!(lt == K_IDENT || lt == K_NUM || lt == K_STR || lt == K_RPAREN || lt == K_RBRACK || lt == K_RBRACE)) {
                size_t st = L->i++;
                while (L->i < L->n && is_digit(s[L->i]))
                    L->i++;
                if (L->i > st + 1 && L->i + 1 < L->n && s[L->i] == '.' && is_digit(s[L->i + 1])) {
                    L->i++;
                    while (L->i < L->n && is_digit(s[L->i]))
                        L->i++;
                }
                if (L->i > st + 1)
                    lex_exponent(L);
                push_tok(L, L->i > st + 1 ? K_NUM : K_UNARY, s + st, L->i - st, st);
                continue;
            }
        }
        int matched = 0;
        for (size_t m = 0; m < sizeof MAPPING / sizeof MAPPING[0]; m++) {
            size_t ln = strlen(MAPPING[m].s);
            if (MAPPING[m].type == K_CEXPR && depth > 0)
                continue;
            if (L->n - L->i >= ln && !memcmp(s + L->i, MAPPING[m].s, ln)) {
                push_tok(L, MAPPING[m].type, s + L->i, ln, L->i);
                if (MAPPING[m].type == K_OEXPR)
                    depth = 0;
                else if (MAPPING[m].type == K_LBRACE)
                    depth++;
                else if (MAPPING[m].type == K_RBRACE)
                    depth--;
                L->i += ln;
                matched = 1;
                break;
            }
        }
        if (matched)
            continue;
        if (c == '\'' || c == '"') {
            lex_string(L, c);
            continue;
        }
        if (is_digit(c)) {
            size_t st = L->i;
            while (L->i < L->n && is_digit(s[L->i]))
                L->i++;
            int lt = L->nt ? L->t[L->nt - 1].type : -1;
            if (lt != K_DOT && L->i + 1 < L->n && s[L->i] == '.' && is_digit(s[L->i + 1])) {
                L->i++;
                while (L->i < L->n && is_digit(s[L->i]))
                    L->i++;
            }
            if (lt != K_DOT)
                lex_exponent(L);
            push_tok(L, K_NUM, s + st, L->i - st, st);
            continue;
        }
        if (is_word(c)) {
            size_t st = L->i;
            while (L->i < L->n && is_word(s[L->i]))
                L->i++;
            push_tok(L, K_IDENT, s + st, L->i - st, st);
            continue;
        }
        efail(L->E, QR_EFORMAT, (long)L->i, "unexpected character: %.*s", (int)u8len((unsigned char)c), s + L->i);
    }
    push_tok(L, K_EOF, "", 0, L->n);
}

/* ---------------------------------------------------------------- AST */

enum {
    N_TEXT, N_COMMENT, N_SET, N_IF, N_FOR, N_BREAK, N_CONTINUE,
    N_INT, N_FLOAT, N_STR, N_ARRAY, N_TUPLE, N_OBJECT, N_IDENT, N_CALL, N_MEMBER, N_SLICE, N_UNARY,
    N_BINARY, N_FILTER, N_TEST, N_SELECT, N_TERNARY, N_KWARG
};

typedef struct node node;
typedef struct {
    node **v;
    size_t n;
} nlist;

struct node {
    int kind;
    size_t pos;
    const char *s; /* text, string literal, identifier, operator, filter/test name */
    size_t n;
    long long i;
    double f;
    int flag;            /* member: computed; test: negate; filter: has call args */
    node *a, *b, *c;     /* operands */
    nlist l1, l2;        /* bodies, lists, args; object: l1 keys, l2 values */
};

struct qr_jinja {
    arena ar;
    nlist body;
    qr_jinja_limits lim;
    char *orig;
    size_t *map;
    size_t maplen;
};

typedef struct {
    ectx *E;
    tok *t;
    size_t cur;
    int depth, maxdepth;
} parser;

static node *mk(parser *P, int kind, size_t pos)
{
    node *x = aalloc(P->E, sizeof *x);
    x->kind = kind;
    x->pos = pos;
    return x;
}

typedef struct {
    node **v;
    size_t n, cap;
} nvec;

static void nv_push(parser *P, nvec *v, node *x)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        node **q = aalloc(P->E, cap * sizeof *q);
        if (v->n)
            memcpy(q, v->v, v->n * sizeof *q);
        v->v = q;
        v->cap = cap;
    }
    v->v[v->n++] = x;
}

static nlist nv_done(nvec *v) { return (nlist){v->v, v->n}; }

static tok *T(parser *P) { return &P->t[P->cur]; }
static int is_t(parser *P, int type) { return T(P)->type == type; }
static int tok_is(const tok *t, const char *s) { return t->n == strlen(s) && !memcmp(t->s, s, t->n); }
static int is_ident(parser *P, const char *name) { return T(P)->type == K_IDENT && tok_is(T(P), name); }

static tok *expect(parser *P, int type, const char *what)
{
    tok *t = T(P);
    if (t->type != type)
        efail(P->E, QR_EFORMAT, (long)t->pos, "expected %s, got '%.*s'", what, (int)(t->n > 40 ? 40 : t->n), t->type == K_EOF ? "end of template" : t->s);
    if (t->type != K_EOF)
        P->cur++;
    return t;
}

static int is_statement(parser *P, const char *a, const char *b, const char *c)
{
    if (!is_t(P, K_OSTMT) || P->t[P->cur + 1].type != K_IDENT)
        return 0;
    tok *n = &P->t[P->cur + 1];
    return (a && tok_is(n, a)) || (b && tok_is(n, b)) || (c && tok_is(n, c));
}

static node *parse_expression(parser *P);
static node *parse_primary(parser *P);
static node *parse_any(parser *P);

static void enter(parser *P)
{
    if (++P->depth > P->maxdepth)
        efail(P->E, QR_ELIMIT, (long)T(P)->pos, "nesting deeper than %d", P->maxdepth);
}

static node *parse_sequence(parser *P, int primary)
{
    size_t pos = T(P)->pos;
    node *first = primary ? parse_primary(P) : parse_expression(P);
    if (!is_t(P, K_COMMA))
        return first;
    nvec v = {0};
    nv_push(P, &v, first);
    while (is_t(P, K_COMMA)) {
        P->cur++;
        nv_push(P, &v, primary ? parse_primary(P) : parse_expression(P));
    }
    node *x = mk(P, N_TUPLE, pos);
    x->l1 = nv_done(&v);
    return x;
}

static nlist parse_args(parser *P)
{
    nvec v = {0};
    int saw_kw = 0;
    expect(P, K_LPAREN, "'('");
    while (!is_t(P, K_RPAREN)) {
        if (is_t(P, K_EOF))
            efail(P->E, QR_EFORMAT, (long)T(P)->pos, "expected ')'");
        if (is_t(P, K_POW) || (is_t(P, K_MUL) && tok_is(T(P), "*")))
            efail(P->E, QR_EUNSUPPORTED, (long)T(P)->pos, "argument unpacking is not supported");
        size_t pos = T(P)->pos;
        node *a = parse_expression(P);
        if (is_t(P, K_EQUALS)) {
            P->cur++;
            if (a->kind != N_IDENT)
                efail(P->E, QR_EFORMAT, (long)pos, "expected identifier for keyword argument");
            node *kw = mk(P, N_KWARG, pos);
            kw->s = a->s;
            kw->n = a->n;
            kw->a = parse_expression(P);
            a = kw;
            saw_kw = 1;
        } else if (saw_kw) {
            efail(P->E, QR_EFORMAT, (long)pos, "positional arguments must come before keyword arguments");
        }
        nv_push(P, &v, a);
        if (is_t(P, K_COMMA))
            P->cur++;
    }
    P->cur++;
    return nv_done(&v);
}

static node *parse_member_args(parser *P)
{
    node *sl[4] = {0};
    size_t ns = 0;
    int slice = 0;
    size_t pos = T(P)->pos;
    while (!is_t(P, K_RBRACK)) {
        if (is_t(P, K_EOF))
            efail(P->E, QR_EFORMAT, (long)T(P)->pos, "expected ']'");
        if (ns >= 4)
            efail(P->E, QR_EFORMAT, (long)pos, "expected 0-3 arguments for slice expression");
        if (is_t(P, K_COLON)) {
            sl[ns++] = NULL;
            P->cur++;
            slice = 1;
        } else {
            sl[ns++] = parse_expression(P);
            if (is_t(P, K_COLON)) {
                P->cur++;
                slice = 1;
            }
        }
    }
    if (ns == 0)
        efail(P->E, QR_EFORMAT, (long)pos, "expected at least one argument for member/slice expression");
    if (slice) {
        if (ns > 3)
            efail(P->E, QR_EFORMAT, (long)pos, "expected 0-3 arguments for slice expression");
        node *x = mk(P, N_SLICE, pos);
        x->a = sl[0];
        x->b = sl[1];
        x->c = sl[2];
        return x;
    }
    return sl[0];
}

static node *parse_member(parser *P, node *obj)
{
    while (is_t(P, K_DOT) || is_t(P, K_LBRACK)) {
        tok *op = T(P);
        P->cur++;
        node *x = mk(P, N_MEMBER, op->pos);
        x->a = obj;
        if (op->type == K_LBRACK) {
            x->flag = 1;
            x->b = parse_member_args(P);
            expect(P, K_RBRACK, "']'");
        } else {
            x->b = parse_primary(P);
            if (x->b->kind != N_IDENT && x->b->kind != N_INT)
                efail(P->E, QR_EFORMAT, (long)x->b->pos, "expected identifier or integer following dot operator");
        }
        obj = x;
    }
    return obj;
}

static node *parse_call(parser *P, node *callee)
{
    node *x = mk(P, N_CALL, callee->pos);
    x->a = callee;
    x->l1 = parse_args(P);
    x = parse_member(P, x);
    if (is_t(P, K_LPAREN))
        x = parse_call(P, x);
    return x;
}

static node *parse_call_member(parser *P)
{
    node *m = parse_member(P, parse_primary(P));
    if (is_t(P, K_LPAREN))
        return parse_call(P, m);
    return m;
}

static node *parse_unary_sign(parser *P)
{
    tok *t = T(P);
    if ((t->type == K_UNARY || t->type == K_ADD) && (tok_is(t, "-") || tok_is(t, "+"))) {
        P->cur++;
        enter(P);
        node *x = mk(P, N_UNARY, t->pos);
        x->s = t->s;
        x->n = 1;
        x->a = parse_unary_sign(P);
        P->depth--;
        return x;
    }
    return parse_call_member(P);
}

static node *parse_filter(parser *P)
{
    node *op = parse_unary_sign(P);
    while (is_t(P, K_PIPE)) {
        P->cur++;
        node *f = parse_primary(P);
        if (f->kind != N_IDENT)
            efail(P->E, QR_EFORMAT, (long)f->pos, "expected identifier for the filter");
        node *x = mk(P, N_FILTER, f->pos);
        x->a = op;
        x->s = f->s;
        x->n = f->n;
        if (is_t(P, K_LPAREN)) {
            x->flag = 1;
            x->l1 = parse_args(P);
            if (is_t(P, K_DOT) || is_t(P, K_LBRACK) || is_t(P, K_LPAREN))
                efail(P->E, QR_EUNSUPPORTED, (long)T(P)->pos, "member access or call on a filter call");
        }
        op = x;
    }
    return op;
}

static node *parse_test(parser *P)
{
    node *op = parse_filter(P);
    while (is_ident(P, "is")) {
        P->cur++;
        int neg = 0;
        if (is_ident(P, "not")) {
            neg = 1;
            P->cur++;
        }
        node *f = parse_primary(P);
        if (f->kind != N_IDENT)
            efail(P->E, QR_EFORMAT, (long)f->pos, "expected identifier for the test");
        if (is_t(P, K_LPAREN))
            efail(P->E, QR_EUNSUPPORTED, (long)T(P)->pos, "tests with arguments are not supported");
        node *x = mk(P, N_TEST, f->pos);
        x->a = op;
        x->flag = neg;
        x->s = f->s;
        x->n = f->n;
        op = x;
    }
    return op;
}

static node *binary(parser *P, tok *op, node *l, node *r)
{
    node *x = mk(P, N_BINARY, op->pos);
    x->s = op->s;
    x->n = op->n;
    x->a = l;
    x->b = r;
    return x;
}

static node *parse_power(parser *P)
{
    node *l = parse_test(P);
    while (is_t(P, K_POW)) {
        tok *op = T(P);
        P->cur++;
        l = binary(P, op, l, parse_test(P));
    }
    return l;
}

static node *parse_mul(parser *P)
{
    node *l = parse_power(P);
    while (is_t(P, K_MUL)) {
        tok *op = T(P);
        P->cur++;
        l = binary(P, op, l, parse_power(P));
    }
    return l;
}

/* jinja2's precedence: ~ binds tighter than + and -, looser than * / // %. */
static int is_tilde(parser *P) { return is_t(P, K_ADD) && T(P)->n == 1 && T(P)->s[0] == '~'; }

static node *parse_concat(parser *P)
{
    node *l = parse_mul(P);
    while (is_tilde(P)) {
        tok *op = T(P);
        P->cur++;
        l = binary(P, op, l, parse_mul(P));
    }
    return l;
}

static node *parse_add(parser *P)
{
    node *l = parse_concat(P);
    while (is_t(P, K_ADD) && !is_tilde(P)) {
        tok *op = T(P);
        P->cur++;
        l = binary(P, op, l, parse_concat(P));
    }
    return l;
}

/* Comparisons chain as in Python: a < b < c is (a < b) and (b < c), with b
 * written once (evaluated twice: template expressions have no side effects). */
static node *parse_cmp(parser *P)
{
    static tok notin = {K_IDENT, "not in", 6, 0}, and_ = {K_IDENT, "and", 3, 0};
    node *l = parse_add(P), *chain = NULL;
    for (;;) {
        tok *op;
        size_t pos;
        if (is_ident(P, "not") && P->t[P->cur + 1].type == K_IDENT && tok_is(&P->t[P->cur + 1], "in")) {
            op = &notin;
            pos = T(P)->pos;
            P->cur += 2;
        } else if (is_ident(P, "in") || is_t(P, K_CMP)) {
            op = T(P);
            pos = op->pos;
            P->cur++;
        } else {
            break;
        }
        node *r = parse_add(P), *x = binary(P, op, l, r);
        x->pos = pos;
        if (chain) {
            node *a = binary(P, &and_, chain, x);
            a->pos = pos;
            chain = a;
        } else {
            chain = x;
        }
        l = r;
    }
    return chain ? chain : l;
}

static node *parse_not(parser *P)
{
    if (is_ident(P, "not")) {
        tok *op = T(P);
        P->cur++;
        enter(P);
        node *x = mk(P, N_UNARY, op->pos);
        x->s = "not";
        x->n = 3;
        x->a = parse_not(P);
        P->depth--;
        return x;
    }
    return parse_cmp(P);
}

static node *parse_and(parser *P)
{
    node *l = parse_not(P);
    while (is_ident(P, "and")) {
        tok *op = T(P);
        P->cur++;
        l = binary(P, op, l, parse_not(P));
    }
    return l;
}

static node *parse_or(parser *P)
{
    node *l = parse_and(P);
    while (is_ident(P, "or")) {
        tok *op = T(P);
        P->cur++;
        l = binary(P, op, l, parse_and(P));
    }
    return l;
}

static node *parse_if_expr(parser *P)
{
    node *a = parse_or(P);
    if (is_ident(P, "if")) {
        size_t pos = T(P)->pos;
        P->cur++;
        node *test = parse_or(P);
        if (is_ident(P, "else")) {
            P->cur++;
            node *x = mk(P, N_TERNARY, pos);
            x->a = test;
            x->b = a;
            x->c = parse_if_expr(P);
            return x;
        }
        node *x = mk(P, N_SELECT, pos);
        x->a = a;
        x->b = test;
        return x;
    }
    return a;
}

static node *parse_expression(parser *P)
{
    enter(P);
    node *x = parse_if_expr(P);
    P->depth--;
    return x;
}

static node *parse_primary(parser *P)
{
    tok *t = T(P);
    if (t->type == K_EOF)
        efail(P->E, QR_EFORMAT, (long)t->pos, "unexpected end of template");
    P->cur++;
    switch (t->type) {
    case K_NUM: {
        char buf[64];
        snprintf(buf, sizeof buf, "%.*s", (int)(t->n < 63 ? t->n : 63), t->s);
        if (memchr(t->s, '.', t->n) || memchr(t->s, 'e', t->n) || memchr(t->s, 'E', t->n)) {
            node *x = mk(P, N_FLOAT, t->pos);
            x->f = strtod(buf, NULL);
            return x;
        }
        node *x = mk(P, N_INT, t->pos);
        x->i = strtoll(buf, NULL, 10);
        return x;
    }
    case K_STR: {
        node *x = mk(P, N_STR, t->pos);
        if (!is_t(P, K_STR)) {
            x->s = t->s;
            x->n = t->n;
            return x;
        }
        size_t n = t->n;
        for (size_t k = P->cur; P->t[k].type == K_STR; k++)
            n += P->t[k].n;
        char *s = aalloc(P->E, n + 1);
        memcpy(s, t->s, t->n);
        size_t o = t->n;
        while (is_t(P, K_STR)) {
            memcpy(s + o, T(P)->s, T(P)->n);
            o += T(P)->n;
            P->cur++;
        }
        x->s = s;
        x->n = n;
        return x;
    }
    case K_IDENT: {
        node *x = mk(P, N_IDENT, t->pos);
        x->s = t->s;
        x->n = t->n;
        return x;
    }
    case K_LPAREN: {
        node *x = parse_sequence(P, 0);
        expect(P, K_RPAREN, "')'");
        return x;
    }
    case K_LBRACK: {
        nvec v = {0};
        while (!is_t(P, K_RBRACK)) {
            if (is_t(P, K_EOF))
                efail(P->E, QR_EFORMAT, (long)t->pos, "unterminated list literal");
            nv_push(P, &v, parse_expression(P));
            if (is_t(P, K_COMMA))
                P->cur++;
        }
        P->cur++;
        node *x = mk(P, N_ARRAY, t->pos);
        x->l1 = nv_done(&v);
        return x;
    }
    case K_LBRACE: {
        nvec k = {0}, v = {0};
        while (!is_t(P, K_RBRACE)) {
            if (is_t(P, K_EOF))
                efail(P->E, QR_EFORMAT, (long)t->pos, "unterminated dict literal");
            nv_push(P, &k, parse_expression(P));
            expect(P, K_COLON, "':' between key and value in dict literal");
            nv_push(P, &v, parse_expression(P));
            if (is_t(P, K_COMMA))
                P->cur++;
        }
        P->cur++;
        node *x = mk(P, N_OBJECT, t->pos);
        x->l1 = nv_done(&k);
        x->l2 = nv_done(&v);
        return x;
    }
    default:
        efail(P->E, QR_EFORMAT, (long)t->pos, "unexpected token '%.*s'", (int)(t->n > 40 ? 40 : t->n), t->s);
    }
}

/* Parses statements until {% a/b/c %} (not consumed) or end of input. */
static nlist parse_body(parser *P, const char *a, const char *b, const char *c, size_t open_pos, const char *what)
{
    nvec v = {0};
    enter(P);
    while (!(a && is_statement(P, a, b, c))) {
        if (is_t(P, K_EOF)) {
            if (!a)
                break;
            efail(P->E, QR_EFORMAT, (long)open_pos, "unclosed '%s' block (missing {%% end%s %%})", what, what);
        }
        nv_push(P, &v, parse_any(P));
    }
    P->depth--;
    return nv_done(&v);
}

static void expect_end(parser *P, const char *name)
{
    expect(P, K_OSTMT, "'{%'");
    if (!is_ident(P, name))
        efail(P->E, QR_EFORMAT, (long)T(P)->pos, "expected %s", name);
    P->cur++;
    expect(P, K_CSTMT, "'%}'");
}

static node *parse_if_stmt(parser *P, size_t pos)
{
    node *x = mk(P, N_IF, pos);
    x->a = parse_expression(P);
    expect(P, K_CSTMT, "'%}'");
    x->l1 = parse_body(P, "elif", "else", "endif", pos, "if");
    if (is_statement(P, "elif", NULL, NULL)) {
        size_t p2 = T(P)->pos;
        P->cur += 2;
        nvec v = {0};
        nv_push(P, &v, parse_if_stmt(P, p2));
        x->l2 = nv_done(&v);
    } else if (is_statement(P, "else", NULL, NULL)) {
        P->cur += 2;
        expect(P, K_CSTMT, "'%}'");
        x->l2 = parse_body(P, "endif", NULL, NULL, pos, "if");
    }
    return x;
}

static node *parse_statement(parser *P)
{
    tok *open = expect(P, K_OSTMT, "'{%'");
    tok *t = T(P);
    if (t->type != K_IDENT)
        efail(P->E, QR_EFORMAT, (long)t->pos, "expected a statement name");
    P->cur++;
    node *x;
    if (tok_is(t, "set")) {
        x = mk(P, N_SET, open->pos);
        x->a = parse_sequence(P, 0);
        if (is_t(P, K_EQUALS)) {
            P->cur++;
            x->b = parse_sequence(P, 0);
        } else {
            expect(P, K_CSTMT, "'%}'");
            x->l1 = parse_body(P, "endset", NULL, NULL, open->pos, "set");
            x->flag = 1;
            expect(P, K_OSTMT, "'{%'");
            P->cur++;
        }
        expect(P, K_CSTMT, "'%}'");
    } else if (tok_is(t, "if")) {
        x = parse_if_stmt(P, open->pos);
        expect_end(P, "endif");
    } else if (tok_is(t, "for")) {
        x = mk(P, N_FOR, open->pos);
        x->a = parse_sequence(P, 1);
        if (x->a->kind != N_IDENT && x->a->kind != N_TUPLE)
            efail(P->E, QR_EFORMAT, (long)x->a->pos, "expected identifier/tuple for the loop variable");
        if (!is_ident(P, "in"))
            efail(P->E, QR_EFORMAT, (long)T(P)->pos, "expected 'in' following loop variable");
        P->cur++;
        x->b = parse_expression(P);
        expect(P, K_CSTMT, "'%}'");
        x->l1 = parse_body(P, "endfor", "else", NULL, open->pos, "for");
        if (is_statement(P, "else", NULL, NULL)) {
            P->cur += 2;
            expect(P, K_CSTMT, "'%}'");
            x->l2 = parse_body(P, "endfor", NULL, NULL, open->pos, "for");
        }
        expect_end(P, "endfor");
    } else if (tok_is(t, "break") || tok_is(t, "continue")) {
        x = mk(P, tok_is(t, "break") ? N_BREAK : N_CONTINUE, open->pos);
        expect(P, K_CSTMT, "'%}'");
    } else if (tok_is(t, "macro") || tok_is(t, "call") || tok_is(t, "filter") ||
               tok_is(t, "include") || tok_is(t, "import") || tok_is(t, "extends") || tok_is(t, "block") ||
               tok_is(t, "with") || tok_is(t, "raw")) {
        efail(P->E, QR_EUNSUPPORTED, (long)t->pos, "unsupported statement '%.*s'", (int)t->n, t->s);
    } else {
        efail(P->E, QR_EFORMAT, (long)t->pos, "unknown statement '%.*s'", (int)(t->n > 40 ? 40 : t->n), t->s);
    }
    return x;
}

static node *parse_any(parser *P)
{
    tok *t = T(P);
    switch (t->type) {
    case K_COMMENT: {
        P->cur++;
        return mk(P, N_COMMENT, t->pos);
    }
    case K_TEXT: {
        P->cur++;
        node *x = mk(P, N_TEXT, t->pos);
        x->s = t->s;
        x->n = t->n;
        return x;
    }
    case K_OSTMT:
        return parse_statement(P);
    case K_OEXPR: {
        P->cur++;
        node *x = parse_expression(P);
        expect(P, K_CEXPR, "'}}'");
        return x;
    }
    default:
        efail(P->E, QR_EFORMAT, (long)t->pos, "unexpected '%.*s'", (int)(t->n > 40 ? 40 : t->n), t->s);
    }
}

/* Preprocessing as jinja2's lexer does with keep_trailing_newline off,
 * lstrip_blocks and trim_blocks on: drop one trailing newline; drop spaces and
 * tabs between a line start and {% or {# (not {%+); drop the newline after
 * %} or #}. map[i] is the original offset of output byte i. */
static void preprocess(ectx *E, const char *src0, size_t n0, char **out, size_t **map, size_t *outn)
{
    /* jinja2's lexer turns every newline sequence (\r\n, \r, \n) into \n first */
    char *src = aalloc(E, n0 + 1);
    size_t *nm = aalloc(E, (n0 + 1) * sizeof *nm), n = 0;
    for (size_t i = 0; i < n0; i++) {
        nm[n] = i;
        if (src0[i] == '\r') {
            src[n++] = '\n';
            if (i + 1 < n0 && src0[i + 1] == '\n')
                i++;
        } else {
            src[n++] = src0[i];
        }
    }
    nm[n] = n0;
    src[n] = 0;
    if (n && src[n - 1] == '\n')
        n--;
    char *a = aalloc(E, n + 1);
    size_t *am = aalloc(E, (n + 1) * sizeof *am);
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        if (i == 0 || src[i - 1] == '\n' || src[i - 1] == '\r') {
            size_t j = i;
            while (j < n && (src[j] == ' ' || src[j] == '\t'))
                j++;
            if (j + 1 < n && src[j] == '{' && (src[j + 1] == '#' || src[j + 1] == '%') &&
                !(j + 2 < n && src[j + 2] == '+')) /* {%+ turns lstrip_blocks off for the tag */
                i = j;
        }
        /* the line-start check above must also run at the stripped position */
        a[k] = src[i];
        am[k++] = i;
        i++;
        while (i < n && !(src[i - 1] == '\n' || src[i - 1] == '\r')) {
            a[k] = src[i];
            am[k++] = i;
            i++;
        }
    }
    char *b = aalloc(E, k + 1);
    size_t *bm = aalloc(E, (k + 1) * sizeof *bm);
    size_t m = 0;
    for (size_t i = 0; i < k;) {
        if (i + 2 < k && (a[i] == '#' || a[i] == '%' || a[i] == '-') && a[i + 1] == '}' && a[i + 2] == '\n') {
            b[m] = a[i];
            bm[m++] = am[i];
            b[m] = a[i + 1];
            bm[m++] = am[i + 1];
            i += 3;
            continue;
        }
        b[m] = a[i];
        bm[m++] = am[i];
        i++;
    }
    b[m] = 0;
    /* transformers' {% generation %} / {% endgeneration %} markers are removed
     * with the whitespace around them (kept unless the tag has '-' on that
     * side): /(\s*){%(-?)\s*(?:end)?generation\s*(-?)%}(\s*)/g */
    char *c = aalloc(E, m + 1);
    size_t *cm = aalloc(E, (m + 1) * sizeof *cm);
    size_t o = 0, seg = 0, k2;
    for (size_t i = 0; i < m;) {
        if (b[i] == '{' && i + 1 < m && b[i + 1] == '%') {
            size_t j = i + 2;
            int ls = j < m && b[j] == '-';
            j += (size_t)ls;
            while (j < m && (k2 = ws_at(b + j, m - j)))
                j += k2;
            if (m - j >= 3 && !memcmp(b + j, "end", 3) && m - j >= 13 && !memcmp(b + j + 3, "generation", 10))
                j += 3;
            if (m - j >= 10 && !memcmp(b + j, "generation", 10)) {
                j += 10;
                while (j < m && (k2 = ws_at(b + j, m - j)))
                    j += k2;
                int rs = j < m && b[j] == '-';
                j += (size_t)rs;
                if (m - j >= 2 && b[j] == '%' && b[j + 1] == '}') {
                    j += 2;
                    if (ls)
                        while (o > seg && (k2 = ws_before(c + seg, o - seg)))
                            o -= k2;
                    size_t ws_end = j;
                    while (ws_end < m && (k2 = ws_at(b + ws_end, m - ws_end)))
                        ws_end += k2;
                    if (!rs)
                        for (size_t q = j; q < ws_end; q++) {
                            c[o] = b[q];
                            cm[o++] = bm[q];
                        }
                    i = ws_end;
                    seg = o;
                    continue;
                }
            }
        }
        c[o] = b[i];
        cm[o++] = bm[i];
        i++;
    }
    c[o] = 0;
    cm[o] = n; /* end of the text */
    *out = c;
    for (size_t i = 0; i <= o; i++) /* offsets back into the original source */
        cm[i] = nm[cm[i] < n ? cm[i] : n];
    *map = cm;
    *outn = o;
}

int qr_jinja_parse(const char *src, size_t len, const qr_jinja_limits *lim, qr_jinja **out)
{
    if (!src || !out)
        return qr_fail(QR_EINVAL, "jinja: parse: NULL argument");
    qr_jinja_limits L = lim ? *lim : (qr_jinja_limits){0};
    if (!L.max_template_bytes)
        L.max_template_bytes = 1u << 20;
    if (!L.max_output_bytes)
        L.max_output_bytes = 16u << 20;
    if (!L.max_loop_iterations)
        L.max_loop_iterations = 1000000;
    if (!L.max_depth)
        L.max_depth = 256;
    if (len > L.max_template_bytes)
        return qr_fail(QR_ELIMIT, "jinja: template is %zu bytes, limit %zu", len, L.max_template_bytes);
    qr_jinja *t = calloc(1, sizeof *t);
    if (!t)
        return qr_fail(QR_ENOMEM, "jinja: out of memory");
    t->lim = L;
    ectx *E = calloc(1, sizeof *E);
    if (!E) {
        free(t);
        return qr_fail(QR_ENOMEM, "jinja: out of memory");
    }
    E->ar = &t->ar;
    if (setjmp(E->jb)) {
        int code = E->code;
        qr_fail(code, "%s", E->msg);
        free(E);
        qr_jinja_free(t);
        return code;
    }
    t->orig = astrdup(E, src, len);
    E->orig = t->orig;
    char *pre;
    size_t pn;
    preprocess(E, src, len, &pre, &t->map, &pn);
    t->maplen = pn;
    E->map = t->map;
    E->maplen = pn;
    lexer Lx = {.E = E, .src = pre, .n = pn};
    lex(&Lx);
    parser P = {.E = E, .t = Lx.t, .maxdepth = L.max_depth};
    t->body = parse_body(&P, NULL, NULL, NULL, 0, "");
    free(E);
    *out = t;
    return 0;
}

void qr_jinja_free(qr_jinja *t)
{
    if (!t)
        return;
    arena_free(&t->ar);
    free(t);
}

/* ---------------------------------------------------------------- values */

enum { V_UNDEF, V_NULL, V_BOOL, V_INT, V_FLOAT, V_STR, V_ARR, V_OBJ, V_NS, V_KW, V_FUNC };

enum {
    F_RAISE = 1, F_RANGE, F_STRFTIME, F_NAMESPACE, F_S_UPPER, F_S_LOWER, F_S_STRIP, F_S_TITLE, F_S_CAP,
    F_S_RSTRIP, F_S_LSTRIP, F_S_STARTS, F_S_ENDS, F_S_SPLIT, F_S_REPLACE, F_O_GET, F_O_ITEMS, F_O_KEYS,
    F_O_VALUES, F_O_DICTSORT
};

typedef struct arr arr;
typedef struct obj obj;
typedef struct val val;

struct val {
    int t;
    int fn;     /* V_FUNC: F_* */
    int tuple;  /* V_ARR made by a tuple literal */
    int view;   /* V_ARR from dict.keys() / values() / items(): 1 / 2 / 3 (Python views: printed as
                   dict_keys([...]), no indexing, no + or *) */
    int gen;    /* V_ARR standing for a jinja2 generator (select, map, unique, items...): 1, or 2 for
                   one that raises when iterated (made from a non-iterable value) */
    union {
        int b;
        long long i;
        double f;
        struct {
            const char *p;
            size_t n;
        } s;
        arr *a;
        obj *o;
    } u;
    val *self; /* V_FUNC: bound receiver */
};

struct arr {
    size_t n, cap;
    val *v;
};

struct obj {
    size_t n, cap;
    const char **k;
    size_t *kn;
    val *v;
};

static const char *type_name(int t)
{
    static const char *names[] = {"UndefinedValue", "NullValue", "BooleanValue", "IntegerValue", "FloatValue",
                                  "StringValue", "ArrayValue", "ObjectValue", "NamespaceValue",
                                  "KeywordArgumentsValue", "FunctionValue"};
    return names[t];
}

typedef struct env {
    struct env *parent;
    obj vars;
} env;

typedef struct {
    ectx *E;
    const qr_jinja *t;
    qr_jinja_date date;
    size_t iterations;
    int depth;
    int ctl; /* 1 break, 2 continue */
} rctx;

static val mkundef(void) { return (val){.t = V_UNDEF}; }
static val mknull(void) { return (val){.t = V_NULL}; }
static val mkbool(int b) { return (val){.t = V_BOOL, .u.b = !!b}; }
static val mkint(long long i) { return (val){.t = V_INT, .u.i = i}; }
static val mkfloat(double f) { return (val){.t = V_FLOAT, .u.f = f}; }
static val mkstr(const char *p, size_t n) { return (val){.t = V_STR, .u.s = {p, n}}; }
static val mkfunc(rctx *R, int fn, const val *self)
{
    val v = {.t = V_FUNC, .fn = fn};
    if (self) {
        v.self = aalloc(R->E, sizeof *v.self);
        *v.self = *self;
    }
    return v;
}

static arr *arr_new(rctx *R) { return aalloc(R->E, sizeof(arr)); }
static void arr_push(rctx *R, arr *a, val v)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 4;
        val *q = aalloc(R->E, cap * sizeof *q);
        if (a->n)
            memcpy(q, a->v, a->n * sizeof *q);
        a->v = q;
        a->cap = cap;
    }
    a->v[a->n++] = v;
}
static val mkarr(arr *a) { return (val){.t = V_ARR, .u.a = a}; }

static val *obj_find(const obj *o, const char *k, size_t kn)
{
    for (size_t i = 0; i < o->n; i++)
        if (o->kn[i] == kn && !memcmp(o->k[i], k, kn))
            return &o->v[i];
    return NULL;
}

static void obj_set(rctx *R, obj *o, const char *k, size_t kn, val v)
{
    val *p = obj_find(o, k, kn);
    if (p) {
        *p = v;
        return;
    }
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 4;
        const char **nk = aalloc(R->E, cap * sizeof *nk);
        size_t *nkn = aalloc(R->E, cap * sizeof *nkn);
        val *nv = aalloc(R->E, cap * sizeof *nv);
        if (o->n) {
            memcpy(nk, o->k, o->n * sizeof *nk);
            memcpy(nkn, o->kn, o->n * sizeof *nkn);
            memcpy(nv, o->v, o->n * sizeof *nv);
        }
        o->k = nk;
        o->kn = nkn;
        o->v = nv;
        o->cap = cap;
    }
    o->k[o->n] = k;
    o->kn[o->n] = kn;
    o->v[o->n++] = v;
}

static val mkobj(rctx *R, int t)
{
    val v = {.t = t};
    v.u.o = aalloc(R->E, sizeof(obj));
    return v;
}

static int is_objlike(const val *v) { return v->t == V_OBJ || v->t == V_KW || v->t == V_NS; }

static int truthy(const val *v)
{
    switch (v->t) {
    case V_UNDEF:
    case V_NULL:
        return 0;
    case V_BOOL:
        return v->u.b;
    case V_INT:
        return v->u.i != 0;
    case V_FLOAT:
        return v->u.f != 0 && !isnan(v->u.f);
    case V_STR:
        return v->u.s.n != 0;
    case V_ARR:
        return v->gen || v->u.a->n != 0; /* a generator is always true */
    case V_OBJ:
    case V_KW:
        return v->u.o->n != 0;
    default: /* namespace (a JS Map object), function */
        return 1;
    }
}

/* Python float.__repr__: the shortest digits that read back as x, in
 * positional notation for exponents -4..15 and d.ddde+XX otherwise. */
static void py_float(double x, char *out, size_t cap)
{
    if (isnan(x)) {
        snprintf(out, cap, "nan");
        return;
    }
    if (isinf(x)) {
        snprintf(out, cap, x < 0 ? "-inf" : "inf");
        return;
    }
    char buf[48];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, x);
        if (strtod(buf, NULL) == x)
            break;
    }
    char *e = strchr(buf, 'e');
    int ex = atoi(e + 1);
    char dg[24];
    size_t nd = 0;
    for (char *q = buf; q < e; q++)
        if (*q >= '0' && *q <= '9')
            dg[nd++] = *q;
    while (nd > 1 && dg[nd - 1] == '0')
        nd--;
    dg[nd] = 0;
    const char *sg = signbit(x) ? "-" : "";
    if (ex < -4 || ex >= 16) {
        snprintf(out, cap, "%s%c%s%se%c%02d", sg, dg[0], nd > 1 ? "." : "", dg + 1, ex < 0 ? '-' : '+',
                 ex < 0 ? -ex : ex);
    } else if (ex >= 0) {
        char ip[24], fp[24];
        size_t ni = (size_t)ex + 1;
        for (size_t i = 0; i < ni; i++)
            ip[i] = i < nd ? dg[i] : '0';
        ip[ni] = 0;
        snprintf(fp, sizeof fp, "%s", nd > ni ? dg + ni : "0");
        snprintf(out, cap, "%s%s.%s", sg, ip, fp);
    } else {
        snprintf(out, cap, "%s0.%.*s%s", sg, -ex - 1, "000", dg); /* ex >= -4: at most 3 zeros */
    }
}

typedef struct {
    char *p;
    size_t n, cap;
} abuf;

static void ab_put(rctx *R, abuf *b, const char *s, size_t n)
{
    if (b->n + n > R->t->lim.max_output_bytes)
        efail(R->E, QR_ELIMIT, -1, "output exceeds %zu bytes", R->t->lim.max_output_bytes);
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *q = aalloc(R->E, cap);
        if (b->n)
            memcpy(q, b->p, b->n);
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static val ab_val(abuf *b) { return mkstr(b->p ? b->p : "", b->n); }

static void ab_puts(rctx *R, abuf *b, const char *s) { ab_put(R, b, s, strlen(s)); }

static void json_str(rctx *R, abuf *b, const char *p, size_t n, int ascii)
{
    ab_put(R, b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        const char *esc = NULL;
        char ub[16];
        if (c == '"')
            esc = "\\\"";
        else if (c == '\\')
            esc = "\\\\";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\r')
            esc = "\\r";
        else if (c == '\t')
            esc = "\\t";
        else if (c == '\b')
            esc = "\\b";
        else if (c == '\f')
            esc = "\\f";
        else if (c < 0x20) {
            snprintf(ub, sizeof ub, "\\u%04x", c);
            esc = ub;
        } else if (ascii && c >= 0x7F) {
            /* ensure_ascii: one \uXXXX per UTF-16 unit */
            int32_t cp;
            utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)p + i, (utf8proc_ssize_t)(n - i), &cp);
            if (k < 1) {
                k = 1;
                cp = 0xFFFD;
            }
            ab_put(R, b, p + i - run, run);
            run = 0;
            if (cp >= 0x10000) {
                unsigned v = (unsigned)cp - 0x10000;
                snprintf(ub, sizeof ub, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
            } else {
                snprintf(ub, sizeof ub, "\\u%04x", (unsigned)cp);
            }
            ab_puts(R, b, ub);
            i += (size_t)k - 1;
            continue;
        }
        if (esc) {
            ab_put(R, b, p + i - run, run);
            run = 0;
            ab_puts(R, b, esc);
        } else {
            run++;
        }
    }
    ab_put(R, b, p + n - run, run);
    ab_put(R, b, "\"", 1);
}

typedef struct {
    long long indent; /* 0: none */
    int ascii, sort;
    const char *isep, *ksep;
    size_t isepn, ksepn;
} jopts;

static int key_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an < bn ? -1 : an > bn);
}

static void to_json(rctx *R, abuf *b, const val *v, const jopts *o, int depth, int undef_null, long pos)
{
    char nb[64];
    if (depth > R->t->lim.max_depth)
        efail(R->E, QR_ELIMIT, pos, "tojson: nesting deeper than %d", R->t->lim.max_depth);
    const char *isep = o->isep ? o->isep : (o->indent ? "," : ", ");
    size_t isepn = o->isep ? o->isepn : strlen(isep);
    const char *ksep = o->ksep ? o->ksep : ": ";
    size_t ksepn = o->ksep ? o->ksepn : 2;
    switch (v->t) {
    case V_NULL:
        ab_puts(R, b, "null");
        return;
    case V_UNDEF: /* json.dumps(Undefined) */
        (void)undef_null;
        efail(R->E, QR_EINVAL, pos, "TypeError: Object of type Undefined is not JSON serializable");
    case V_INT:
        snprintf(nb, sizeof nb, "%lld", v->u.i);
        ab_puts(R, b, nb);
        return;
    case V_FLOAT:
        if (isnan(v->u.f) || isinf(v->u.f)) /* json.dumps allows them, spelled as in JavaScript */
            snprintf(nb, sizeof nb, "%s", isnan(v->u.f) ? "NaN" : v->u.f < 0 ? "-Infinity" : "Infinity");
        else
            py_float(v->u.f, nb, sizeof nb);
        ab_puts(R, b, nb);
        return;
    case V_BOOL:
        ab_puts(R, b, v->u.b ? "true" : "false");
        return;
    case V_STR:
        json_str(R, b, v->u.s.p, v->u.s.n, o->ascii);
        return;
    case V_ARR:
    case V_OBJ:
    case V_KW:
    case V_NS: {
        if (v->t == V_ARR && (v->gen || v->view))
            efail(R->E, QR_EINVAL, pos, "TypeError: Object of type %s is not JSON serializable",
                  v->gen ? "generator" : v->view == 1 ? "dict_keys" : v->view == 2 ? "dict_values" : "dict_items");
        size_t cnt = v->t == V_ARR ? v->u.a->n : v->u.o->n;
        int arrv = v->t == V_ARR;
        if (!o->indent || cnt == 0) {
            ab_puts(R, b, arrv ? "[" : "{");
        } else {
            ab_puts(R, b, arrv ? "[" : "{");
        }
        size_t *order = NULL;
        if (!arrv && o->sort && cnt) {
            order = aalloc(R->E, cnt * sizeof *order);
            for (size_t i = 0; i < cnt; i++)
                order[i] = i;
            const obj *ob = v->u.o;
            for (size_t i = 1; i < cnt; i++) { /* stable insertion sort by key bytes */
                size_t x = order[i], j = i;
                while (j > 0 && key_cmp(ob->k[order[j - 1]], ob->kn[order[j - 1]], ob->k[x], ob->kn[x]) > 0) {
                    order[j] = order[j - 1];
                    j--;
                }
                order[j] = x;
            }
        }
        for (size_t i = 0; i < cnt; i++) {
            if (i)
                ab_put(R, b, isep, isepn);
            if (o->indent) {
                ab_put(R, b, "\n", 1);
                for (long long s = 0; s < o->indent * (depth + 1); s++)
                    ab_put(R, b, " ", 1);
            }
            if (arrv) {
                to_json(R, b, &v->u.a->v[i], o, depth + 1, undef_null, pos);
            } else {
                size_t k = order ? order[i] : i;
                json_str(R, b, v->u.o->k[k], v->u.o->kn[k], o->ascii);
                ab_put(R, b, ksep, ksepn);
                to_json(R, b, &v->u.o->v[k], o, depth + 1, undef_null, pos);
            }
        }
        if (o->indent && cnt) {
            ab_put(R, b, "\n", 1);
            for (long long s = 0; s < o->indent * depth; s++)
                ab_put(R, b, " ", 1);
        }
        ab_puts(R, b, arrv ? "]" : "}");
        return;
    }
    default:
        efail(R->E, QR_EINVAL, pos, "Cannot convert to JSON: %s", type_name(v->t));
    }
}


static void to_json_ab(rctx *R, abuf *out, const val *v, const jopts *o, int undef_null, long pos)
{
    to_json(R, out, v, o, 0, undef_null, pos);
    if (!out->p)
        ab_put(R, out, "", 0);
}

static void py_repr(rctx *R, abuf *out, const val *v, int depth, long pos);

/* Python repr() of a str: single quotes unless the text has ' and no ",
 * backslash escapes for the quote, backslash and control characters. */
static void py_repr_str(rctx *R, abuf *out, const char *p, size_t n)
{
    char q = memchr(p, '\'', n) && !memchr(p, '"', n) ? '"' : '\'';
    ab_put(R, out, &q, 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        char esc[8];
        if (c == '\\' || c == (unsigned char)q) {
            esc[0] = '\\';
            esc[1] = (char)c;
            ab_put(R, out, esc, 2);
        } else if (c == '\n' || c == '\r' || c == '\t') {
            ab_put(R, out, c == '\n' ? "\\n" : c == '\r' ? "\\r" : "\\t", 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            ab_put(R, out, esc, 4);
        } else {
            ab_put(R, out, (const char *)&p[i], 1);
        }
    }
    ab_put(R, out, &q, 1);
}

/* Python str(): what {{ v }}, ~, + on strings and join print. Undefined is
 * "" (jinja2's default Undefined), None/True/False as Python spells them,
 * lists and dicts as their repr(). */
static void to_str(rctx *R, abuf *out, const val *v, long pos)
{
    if (v->t == V_UNDEF)
        return;
    if (v->t == V_STR) {
        ab_put(R, out, v->u.s.p, v->u.s.n);
        return;
    }
    py_repr(R, out, v, 0, pos);
}

static void py_repr(rctx *R, abuf *out, const val *v, int depth, long pos)
{
    char nb[64];
    if (depth > R->t->lim.max_depth)
        efail(R->E, QR_ELIMIT, pos, "printing: nesting deeper than %d", R->t->lim.max_depth);
    switch (v->t) {
    case V_UNDEF:
        ab_puts(R, out, "Undefined");
        return;
    case V_NULL:
        ab_puts(R, out, "None");
        return;
    case V_BOOL:
        ab_puts(R, out, v->u.b ? "True" : "False");
        return;
    case V_INT:
        snprintf(nb, sizeof nb, "%lld", v->u.i);
        ab_puts(R, out, nb);
        return;
    case V_FLOAT:
        py_float(v->u.f, nb, sizeof nb);
        ab_puts(R, out, nb);
        return;
    case V_STR:
        py_repr_str(R, out, v->u.s.p, v->u.s.n);
        return;
    case V_ARR:
        if (v->gen) { /* jinja2 prints "<generator object NAME at 0xADDRESS>" */
            ab_puts(R, out, "<generator object>");
            return;
        }
        if (v->view)
            ab_puts(R, out, v->view == 1 ? "dict_keys(" : v->view == 2 ? "dict_values(" : "dict_items(");
        ab_puts(R, out, v->tuple ? "(" : "[");
        for (size_t i = 0; i < v->u.a->n; i++) {
            if (i)
                ab_puts(R, out, ", ");
            py_repr(R, out, &v->u.a->v[i], depth + 1, pos);
        }
        ab_puts(R, out, v->tuple ? (v->u.a->n == 1 ? ",)" : ")") : "]");
        if (v->view)
            ab_puts(R, out, ")");
        return;
    case V_OBJ:
    case V_KW:
    case V_NS:
        ab_puts(R, out, v->t == V_NS ? "<Namespace {" : "{");
        for (size_t i = 0; i < v->u.o->n; i++) {
            if (i)
                ab_puts(R, out, ", ");
            py_repr_str(R, out, v->u.o->k[i], v->u.o->kn[i]);
            ab_puts(R, out, ": ");
            py_repr(R, out, &v->u.o->v[i], depth + 1, pos);
        }
        ab_puts(R, out, v->t == V_NS ? "}>" : "}");
        return;
    default:
        efail(R->E, QR_EINVAL, pos, "cannot convert a function to a string");
    }
}

static void raw_str(rctx *R, abuf *out, const val *v, long pos) { to_str(R, out, v, pos); }

/* ------------------------------------------------------------ environment */

static val *env_lookup(env *e, const char *k, size_t kn)
{
    for (; e; e = e->parent) {
        val *v = obj_find(&e->vars, k, kn);
        if (v)
            return v;
    }
    return NULL;
}

static env *env_new(rctx *R, env *parent)
{
    env *e = aalloc(R->E, sizeof *e);
    e->parent = parent;
    return e;
}

/* --------------------------------------------------------------- helpers */

/* Python ==: numbers (bool as int) by value, strings by bytes, lists and
 * dicts element by element, Undefined only equal to Undefined (jinja2's
 * Undefined.__eq__), namespaces and functions by identity. */
static int py_eq(const val *a, const val *b)
{
    int anum = a->t == V_INT || a->t == V_FLOAT || a->t == V_BOOL;
    int bnum = b->t == V_INT || b->t == V_FLOAT || b->t == V_BOOL;
    if (anum && bnum) {
        if (a->t != V_FLOAT && b->t != V_FLOAT)
            return (a->t == V_INT ? a->u.i : a->u.b) == (b->t == V_INT ? b->u.i : b->u.b);
        double x = a->t == V_INT ? (double)a->u.i : a->t == V_FLOAT ? a->u.f : a->u.b;
        double y = b->t == V_INT ? (double)b->u.i : b->t == V_FLOAT ? b->u.f : b->u.b;
        return x == y;
    }
    int ad = a->t == V_OBJ || a->t == V_KW, bd = b->t == V_OBJ || b->t == V_KW;
    if (a->t != b->t && !(ad && bd))
        return 0;
    switch (a->t) {
    case V_UNDEF:
    case V_NULL:
        return 1;
    case V_STR:
        return a->u.s.n == b->u.s.n && !memcmp(a->u.s.p, b->u.s.p, a->u.s.n);
    case V_ARR:
        if (a->gen || b->gen || a->view || b->view)
            return a->u.a == b->u.a && a->view == b->view;
        if (a->u.a->n != b->u.a->n)
            return 0;
        for (size_t i = 0; i < a->u.a->n; i++)
            if (!py_eq(&a->u.a->v[i], &b->u.a->v[i]))
                return 0;
        return 1;
    case V_OBJ:
    case V_KW:
        if (a->u.o->n != b->u.o->n)
            return 0;
        for (size_t i = 0; i < a->u.o->n; i++) {
            const val *w = obj_find(b->u.o, a->u.o->k[i], a->u.o->kn[i]);
            if (!w || !py_eq(&a->u.o->v[i], w))
                return 0;
        }
        return 1;
    case V_NS:
        return a->u.o == b->u.o;
    case V_FUNC:
        return a->fn == b->fn && a->self == b->self;
    default:
        return 0;
    }
}

static val case_map(rctx *R, const val *s, int upper)
{
    abuf b = {0};
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s->u.s.p;
    utf8proc_ssize_t n = (utf8proc_ssize_t)s->u.s.n, i = 0;
    while (i < n) {
        int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, n - i, &cp);
        if (k < 1) {
            ab_put(R, &b, (const char *)p + i, 1);
            i++;
            continue;
        }
        int32_t m = upper ? utf8proc_toupper(cp) : utf8proc_tolower(cp);
        utf8proc_uint8_t enc[4];
        utf8proc_ssize_t w = utf8proc_encode_char(m, enc);
        ab_put(R, &b, (const char *)enc, (size_t)w);
        i += k;
    }
    val v = ab_val(&b);
    if (!b.p)
        v = mkstr("", 0);
    return v;
}

static val str_trim(const val *s, int l, int r)
{
    const char *p = s->u.s.p;
    size_t n = s->u.s.n;
    trim_js(&p, &n, l, r);
    return mkstr(p, n);
}

static arr *str_chars(rctx *R, const val *s);

/* Python str.strip(chars): drops leading / trailing code points found in chars. */
static val str_strip_chars(rctx *R, const val *s, const val *chars, int l, int r)
{
    arr *c = str_chars(R, s), *set = str_chars(R, chars);
    size_t a = 0, b = c->n;
    for (int side = 0; side < 2; side++) {
        if (!(side ? r : l))
            continue;
        while (a < b) {
            const val *ch = &c->v[side ? b - 1 : a];
            int hit = 0;
            for (size_t j = 0; j < set->n && !hit; j++)
                hit = py_eq(ch, &set->v[j]);
            if (!hit)
                break;
            if (side)
                b--;
            else
                a++;
        }
    }
    if (a == b)
        return mkstr("", 0);
    const char *from = c->v[a].u.s.p, *to = c->v[b - 1].u.s.p + c->v[b - 1].u.s.n;
    return mkstr(from, (size_t)(to - from));
}

/* Title case. filter = 0: Python str.title() (a cased letter after an uncased
 * character starts a word). filter = 1: jinja2's title filter (a word starts
 * after '-', whitespace, '(', '{', '[' or '<'). Word starts are title-cased
 * (filter: upper-cased), everything else lower-cased. */
static val title_case(rctx *R, const val *s, int filter)
{
    abuf b = {0};
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s->u.s.p;
    utf8proc_ssize_t n = (utf8proc_ssize_t)s->u.s.n, i = 0;
    int start = 1;
    while (i < n) {
        int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, n - i, &cp);
        if (k < 1) {
            ab_put(R, &b, (const char *)p + i, 1);
            i++;
            start = 1;
            continue;
        }
        /* str.title() title-cases a word start; jinja2's filter upper-cases it (item[0].upper()) */
        int32_t m = start ? (filter ? utf8proc_toupper(cp) : utf8proc_totitle(cp)) : utf8proc_tolower(cp);
        utf8proc_uint8_t enc[4];
        ab_put(R, &b, (const char *)enc, (size_t)utf8proc_encode_char(m, enc));
        if (filter) {
            start = cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' ||
                    ws_at((const char *)p + i, (size_t)k) == (size_t)k;
        } else {
            utf8proc_category_t c = utf8proc_category(cp);
            start = !(c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT);
        }
        i += k;
    }
    return b.p ? ab_val(&b) : mkstr("", 0);
}

/* jinja2's int / float filters: int(value) (a str in base 10, else through
 * float(value), truncated), float(value); the default when not convertible. */
static val py_int_float(rctx *R, const val *v, int to_int, val dflt, long pos)
{
    if (v->t == V_UNDEF)
        efail(R->E, QR_EINVAL, pos, "UndefinedError: %s() of an undefined value", to_int ? "int" : "float");
    double d;
    if (v->t == V_INT || v->t == V_BOOL) {
        long long i = v->t == V_INT ? v->u.i : v->u.b;
        return to_int ? mkint(i) : mkfloat((double)i);
    }
    if (v->t == V_FLOAT) {
        d = v->u.f;
    } else if (v->t == V_STR) {
        const char *p = v->u.s.p;
        size_t n = v->u.s.n;
        trim_js(&p, &n, 1, 1);
        char buf[128];
        if (n == 0 || n >= sizeof buf)
            return dflt;
        memcpy(buf, p, n);
        buf[n] = 0;
        char *end;
        if (to_int) {
            size_t k = buf[0] == '+' || buf[0] == '-';
            int digits = k < n;
            for (size_t j = k; j < n; j++)
                digits &= buf[j] >= '0' && buf[j] <= '9';
            if (digits)
                return mkint(strtoll(buf, NULL, 10));
        }
        if (strchr(buf, 'x') || strchr(buf, 'X')) /* strtod reads hex floats, Python does not */
            return dflt;
        d = strtod(buf, &end);
        if (*end)
            return dflt;
    } else {
        return dflt;
    }
    if (!to_int)
        return mkfloat(d);
    if (!isfinite(d))
        efail(R->E, QR_EINVAL, pos, "OverflowError: cannot convert float infinity or NaN to integer");
    return mkint((long long)trunc(d));
}

/* jinja2's round filter: method "common" is Python round() (the exact binary
 * value rounded half-even, as printf("%.*f") does; an int stays an int),
 * "ceil" / "floor" round up / down; the result of those is a float. */
static val do_round(rctx *R, const val *v, long long prec, const char *method, long pos)
{
    if (v->t != V_INT && v->t != V_FLOAT && v->t != V_BOOL)
        efail(R->E, QR_EINVAL, pos, "round: expected a number, got %s", type_name(v->t));
    if (prec < 0 || prec > 30)
        efail(R->E, QR_EUNSUPPORTED, pos, "round: precision must be 0..30");
    double x = v->t == V_INT ? (double)v->u.i : v->t == V_FLOAT ? v->u.f : v->u.b;
    if (!strcmp(method, "common")) {
        if (v->t != V_FLOAT)
            return v->t == V_BOOL ? mkint(v->u.b) : *v;
        char buf[512];
        snprintf(buf, sizeof buf, "%.*f", (int)prec, x);
        return mkfloat(strtod(buf, NULL));
    }
    if (strcmp(method, "ceil") && strcmp(method, "floor"))
        efail(R->E, QR_EINVAL, pos, "round: method must be common, ceil or floor");
    double f = pow(10, (double)prec);
    return mkfloat((method[0] == 'c' ? ceil(x * f) : floor(x * f)) / f);
}

static int starts_with(const val *s, const val *pre)
{
    return pre->u.s.n <= s->u.s.n && !memcmp(s->u.s.p, pre->u.s.p, pre->u.s.n);
}

static int ends_with(const val *s, const val *suf)
{
    return suf->u.s.n <= s->u.s.n && !memcmp(s->u.s.p + s->u.s.n - suf->u.s.n, suf->u.s.p, suf->u.s.n);
}

static const char *memfind(const char *h, size_t hn, const char *nd, size_t nn)
{
    if (nn == 0)
        return h;
    if (nn > hn)
        return NULL;
    for (size_t i = 0; i + nn <= hn; i++)
        if (h[i] == nd[0] && !memcmp(h + i, nd, nn))
            return h + i;
    return NULL;
}

/* Characters (code points) of a string as an array of strings. */
static arr *str_chars(rctx *R, const val *s)
{
    arr *a = arr_new(R);
    for (size_t i = 0; i < s->u.s.n;) {
        size_t k = u8len((unsigned char)s->u.s.p[i]);
        if (i + k > s->u.s.n)
            k = s->u.s.n - i;
        arr_push(R, a, mkstr(s->u.s.p + i, k));
        i += k;
    }
    return a;
}

static val kwarg(const val *args, size_t nargs, const char *name)
{
    if (nargs && args[nargs - 1].t == V_KW) {
        val *v = obj_find(args[nargs - 1].u.o, name, strlen(name));
        if (v)
            return *v;
    }
    return mkundef();
}

static size_t npos(const val *args, size_t nargs) { return nargs && args[nargs - 1].t == V_KW ? nargs - 1 : nargs; }

/* datetime.strftime(format) of the render date: Python hands the format to
 * the C library's strftime with the date's struct tm (C locale), so we do
 * the same; %z and %Z are empty for Python's naive datetime. */
static void strftime_py(rctx *R, abuf *b, const char *f, size_t n)
{
    const qr_jinja_date *d = &R->date;
    /* day of week and of year from the civil date (days since 1970-01-01) */
    int y = d->year - (d->month <= 2), m = d->month;
    int era = (y >= 0 ? y : y - 399) / 400, yoe = y - era * 400;
    int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d->day - 1;
    long long days = (long long)era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
    static const int cum[] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
    int leap = (d->year % 4 == 0 && d->year % 100 != 0) || d->year % 400 == 0;
    int mi = d->month >= 1 && d->month <= 12 ? d->month - 1 : 0;
    struct tm tm = {.tm_year = d->year - 1900, .tm_mon = mi, .tm_mday = d->day, .tm_hour = d->hour,
                    .tm_min = d->minute, .tm_wday = (int)(((days % 7) + 11) % 7), .tm_isdst = -1,
                    .tm_yday = cum[mi] + d->day - 1 + (leap && mi > 1)};
    abuf fmt = {0};
    for (size_t i = 0; i < n; i++) {
        if (f[i] == '%' && i + 1 < n && (f[i + 1] == 'z' || f[i + 1] == 'Z')) {
            i++;
            continue;
        }
        ab_put(R, &fmt, f + i, 1);
        if (f[i] == '%' && i + 1 < n)
            ab_put(R, &fmt, f + ++i, 1);
    }
    ab_put(R, &fmt, "", 1); /* NUL */
    char out[1024];
    size_t k = fmt.n > 1 ? strftime(out, sizeof out, fmt.p, &tm) : 0;
    if (k == 0 && fmt.n > 1)
        efail(R->E, QR_ELIMIT, -1, "strftime_now: result longer than %zu bytes", sizeof out - 1);
    ab_put(R, b, out, k);
}

static int cmp_values(rctx *R, const val *a, const val *b, int cs, long pos);

static val call_func(rctx *R, const val *fn, val *args, size_t nargs, long pos)
{
    const val *self = fn->self;
    size_t np = npos(args, nargs);
    switch (fn->fn) {
    case F_RAISE: {
        abuf b = {0};
        if (nargs)
            raw_str(R, &b, &args[0], pos);
        R->E->code = QR_EINVAL;
        snprintf(R->E->msg, sizeof R->E->msg, "%s%.*s", QR_JINJA_RAISE_PREFIX, (int)b.n, b.p ? b.p : "");
        longjmp(R->E->jb, 1);
    }
    case F_RANGE: {
        long long st = 0, sp, step = 1;
        for (size_t i = 0; i < np; i++)
            if (args[i].t != V_INT)
                efail(R->E, QR_EINVAL, pos, "range() arguments must be integers");
        if (np == 0)
            efail(R->E, QR_EINVAL, pos, "range() expects at least one argument");
        if (np == 1) {
            sp = args[0].u.i;
        } else {
            st = args[0].u.i;
            sp = args[1].u.i;
            if (np > 2)
                step = args[2].u.i;
        }
        if (step == 0)
            efail(R->E, QR_EINVAL, pos, "range() step must not be zero");
        arr *a = arr_new(R);
        for (long long i = st; step > 0 ? i < sp : i > sp; i += step) {
            if (++R->iterations > R->t->lim.max_loop_iterations)
                efail(R->E, QR_ELIMIT, pos, "more than %zu loop iterations", R->t->lim.max_loop_iterations);
            arr_push(R, a, mkint(i));
        }
        return mkarr(a);
    }
    case F_STRFTIME: {
        if (np < 1 || args[0].t != V_STR)
            efail(R->E, QR_EINVAL, pos, "strftime_now() expects a format string");
        abuf b = {0};
        strftime_py(R, &b, args[0].u.s.p, args[0].u.s.n);
        return b.p ? ab_val(&b) : mkstr("", 0);
    }
    case F_NAMESPACE: {
        val ns = mkobj(R, V_NS);
        if (np > 1)
            efail(R->E, QR_EINVAL, pos, "namespace expected at most 1 argument, got %zu", np);
        if (np == 1) {
            if (args[0].t == V_OBJ || args[0].t == V_KW) {
                for (size_t i = 0; i < args[0].u.o->n; i++)
                    obj_set(R, ns.u.o, args[0].u.o->k[i], args[0].u.o->kn[i], args[0].u.o->v[i]);
            } else {
                efail(R->E, QR_EUNSUPPORTED, pos, "namespace() from a non-mapping");
            }
        }
        if (nargs > np)
            for (size_t i = 0; i < args[np].u.o->n; i++)
                obj_set(R, ns.u.o, args[np].u.o->k[i], args[np].u.o->kn[i], args[np].u.o->v[i]);
        return ns;
    }
    case F_S_UPPER: return case_map(R, self, 1);
    case F_S_LOWER: return case_map(R, self, 0);
    case F_S_STRIP:
    case F_S_LSTRIP:
    case F_S_RSTRIP: {
        int l = fn->fn != F_S_RSTRIP, r = fn->fn != F_S_LSTRIP;
        if (np == 0 || args[0].t == V_NULL)
            return str_trim(self, l, r);
        if (args[0].t != V_STR)
            efail(R->E, QR_EINVAL, pos, "strip arg must be None or str");
        return str_strip_chars(R, self, &args[0], l, r);
    }
    case F_S_TITLE:
        return title_case(R, self, 0);
    case F_S_CAP: {
        if (!self->u.s.n)
            return *self;
        size_t k = u8len((unsigned char)self->u.s.p[0]);
        if (k > self->u.s.n)
            k = self->u.s.n;
        int32_t cp0;
        utf8proc_uint8_t enc[4];
        val first = {.t = V_STR, .u.s = {self->u.s.p, k}};
        if (utf8proc_iterate((const utf8proc_uint8_t *)self->u.s.p, (utf8proc_ssize_t)k, &cp0) > 0) {
            utf8proc_ssize_t w = utf8proc_encode_char(utf8proc_totitle(cp0), enc); /* Python: title case */
            first.u.s.p = astrdup(R->E, (const char *)enc, (size_t)w);
            first.u.s.n = (size_t)w;
        }
        val rest = case_map(R, &(val){.t = V_STR, .u.s = {self->u.s.p + k, self->u.s.n - k}}, 0);
        abuf b = {0};
        ab_put(R, &b, first.u.s.p, first.u.s.n);
        ab_put(R, &b, rest.u.s.p, rest.u.s.n);
        return ab_val(&b);
    }
    case F_S_STARTS:
    case F_S_ENDS: {
        const char *nm = fn->fn == F_S_STARTS ? "startswith" : "endswith";
        if (nargs == 0)
            efail(R->E, QR_EINVAL, pos, "%s() requires at least one argument", nm);
        int (*f)(const val *, const val *) = fn->fn == F_S_STARTS ? starts_with : ends_with;
        if (args[0].t == V_STR)
            return mkbool(f(self, &args[0]));
        if (args[0].t == V_ARR) {
            for (size_t i = 0; i < args[0].u.a->n; i++) {
                if (args[0].u.a->v[i].t != V_STR)
                    efail(R->E, QR_EINVAL, pos, "%s() tuple elements must be strings", nm);
                if (f(self, &args[0].u.a->v[i]))
                    return mkbool(1);
            }
            return mkbool(0);
        }
        efail(R->E, QR_EINVAL, pos, "%s() argument must be a string or tuple of strings", nm);
    }
    case F_S_SPLIT: {
        val sep = nargs > 0 ? args[0] : mknull();
        val maxv = nargs > 1 ? args[1] : mkint(-1);
        if (sep.t != V_STR && sep.t != V_NULL)
            efail(R->E, QR_EINVAL, pos, "sep argument must be a string or null");
        if (maxv.t != V_INT)
            efail(R->E, QR_EINVAL, pos, "maxsplit argument must be a number");
        long long maxs = maxv.u.i;
        arr *a = arr_new(R);
        const char *p = self->u.s.p;
        size_t n = self->u.s.n;
        if (sep.t == V_NULL) {
            trim_js(&p, &n, 1, 0);
            size_t i = 0, k;
            while (i < n) {
                while (i < n && (k = ws_at(p + i, n - i)))
                    i += k;
                if (i >= n)
                    break;
                if (maxs != -1 && (long long)a->n >= maxs) {
                    arr_push(R, a, mkstr(p + i, n - i));
                    break;
                }
                size_t st = i;
                while (i < n && !ws_at(p + i, n - i))
                    i += u8len((unsigned char)p[i]);
                if (i > n)
                    i = n;
                arr_push(R, a, mkstr(p + st, i - st));
            }
        } else {
            if (sep.u.s.n == 0)
                efail(R->E, QR_EINVAL, pos, "empty separator");
            const char *q;
            while ((maxs == -1 || (long long)a->n < maxs) && (q = memfind(p, n, sep.u.s.p, sep.u.s.n))) {
                arr_push(R, a, mkstr(p, (size_t)(q - p)));
                n -= (size_t)(q - p) + sep.u.s.n;
                p = q + sep.u.s.n;
            }
            arr_push(R, a, mkstr(p, n));
        }
        return mkarr(a);
    }
    case F_S_REPLACE: {
        if (nargs < 2)
            efail(R->E, QR_EINVAL, pos, "replace() requires at least two arguments");
        if (args[0].t != V_STR || args[1].t != V_STR)
            efail(R->E, QR_EINVAL, pos, "replace() arguments must be strings");
        val cnt = mknull();
        if (nargs > 2)
            cnt = args[2].t == V_KW ? kwarg(args, nargs, "count") : args[2];
        if (cnt.t == V_UNDEF)
            cnt = mknull();
        if (cnt.t != V_INT && cnt.t != V_NULL)
            efail(R->E, QR_EINVAL, pos, "replace() count argument must be a number or null");
        long long left = cnt.t == V_INT && cnt.u.i >= 0 ? cnt.u.i : -1;
        if (cnt.t == V_INT && cnt.u.i == 0)
            return *self;
        abuf b = {0};
        const char *p = self->u.s.p;
        size_t n = self->u.s.n;
        const val *o = &args[0], *w = &args[1];
        if (o->u.s.n == 0) { /* insert between every character and at both ends */
            size_t i = 0;
            for (;;) {
                if (left != 0) {
                    ab_put(R, &b, w->u.s.p, w->u.s.n);
                    if (left > 0)
                        left--;
                }
                if (i >= n)
                    break;
                size_t k = u8len((unsigned char)p[i]);
                if (i + k > n)
                    k = n - i;
                ab_put(R, &b, p + i, k);
                i += k;
            }
        } else {
            const char *q;
            while (left != 0 && (q = memfind(p, n, o->u.s.p, o->u.s.n))) {
                ab_put(R, &b, p, (size_t)(q - p));
                ab_put(R, &b, w->u.s.p, w->u.s.n);
                n -= (size_t)(q - p) + o->u.s.n;
                p = q + o->u.s.n;
                if (left > 0)
                    left--;
            }
            ab_put(R, &b, p, n);
        }
        return b.p ? ab_val(&b) : mkstr("", 0);
    }
    case F_O_GET: {
        if (nargs < 1 || args[0].t != V_STR)
            efail(R->E, QR_EINVAL, pos, "Object key must be a string: got %s", type_name(nargs ? args[0].t : V_UNDEF));
        val *v = obj_find(self->u.o, args[0].u.s.p, args[0].u.s.n);
        if (v)
            return *v;
        return nargs > 1 ? args[1] : mknull();
    }
    case F_O_ITEMS:
    case F_O_KEYS:
    case F_O_VALUES: {
        arr *a = arr_new(R);
        for (size_t i = 0; i < self->u.o->n; i++) {
            val k = mkstr(self->u.o->k[i], self->u.o->kn[i]);
            if (fn->fn == F_O_ITEMS) {
                arr *pr = arr_new(R);
                arr_push(R, pr, k);
                arr_push(R, pr, self->u.o->v[i]);
                val t = mkarr(pr);
                t.tuple = 1; /* (key, value) */
                arr_push(R, a, t);
            } else {
                arr_push(R, a, fn->fn == F_O_KEYS ? k : self->u.o->v[i]);
            }
        }
        return mkarr(a);
    }
    default:
        efail(R->E, QR_EUNSUPPORTED, pos, "unsupported function");
    }
}

/* Builtin attribute of a value ("length", methods), or undefined. */
static val builtin_attr(rctx *R, const val *v, const char *k, size_t kn)
{
#define IS(s) (kn == sizeof(s) - 1 && !memcmp(k, s, kn))
    if (v->t == V_STR) {
        if (IS("length") || IS("count"))
            return mkundef(); /* a Python str has no .length */
        static const struct {
            const char *n;
            int f;
        } M[] = {{"upper", F_S_UPPER}, {"lower", F_S_LOWER}, {"strip", F_S_STRIP}, {"title", F_S_TITLE},
                 {"capitalize", F_S_CAP}, {"rstrip", F_S_RSTRIP}, {"lstrip", F_S_LSTRIP},
                 {"startswith", F_S_STARTS}, {"endswith", F_S_ENDS}, {"split", F_S_SPLIT},
                 {"replace", F_S_REPLACE}};
        for (size_t i = 0; i < sizeof M / sizeof M[0]; i++)
            if (kn == strlen(M[i].n) && !memcmp(k, M[i].n, kn))
                return mkfunc(R, M[i].f, v);
    } else if (v->t == V_ARR) {
        if (IS("length") || IS("count"))
            return mkint((long long)v->u.a->n);
    } else if (v->t == V_OBJ || v->t == V_KW) {
        if (IS("get"))
            return mkfunc(R, F_O_GET, v);
        if (IS("items"))
            return mkfunc(R, F_O_ITEMS, v);
        if (IS("keys"))
            return mkfunc(R, F_O_KEYS, v);
        if (IS("values"))
            return mkfunc(R, F_O_VALUES, v);
        if (IS("dictsort"))
            return mkfunc(R, F_O_DICTSORT, v);
    }
#undef IS
    return mkundef();
}

static int cmp_values(rctx *R, const val *a, const val *b, int cs, long pos)
{
    if (a->t == V_NULL && b->t == V_NULL)
        return 0;
    if (a->t == V_NULL || b->t == V_NULL || a->t == V_UNDEF || b->t == V_UNDEF) {
        if (a->t == V_UNDEF && b->t == V_UNDEF)
            return 0;
        efail(R->E, QR_EINVAL, pos, "Cannot compare %s with %s", type_name(a->t), type_name(b->t));
    }
    int an = a->t == V_INT || a->t == V_FLOAT || a->t == V_BOOL, bn = b->t == V_INT || b->t == V_FLOAT || b->t == V_BOOL;
    if (an && bn) {
        double x = a->t == V_INT ? (double)a->u.i : a->t == V_FLOAT ? a->u.f : a->u.b;
        double y = b->t == V_INT ? (double)b->u.i : b->t == V_FLOAT ? b->u.f : b->u.b;
        return x < y ? -1 : x > y;
    }
    if (a->t != b->t)
        efail(R->E, QR_EINVAL, pos, "Cannot compare different types: %s and %s", type_name(a->t), type_name(b->t));
    if (a->t != V_STR)
        efail(R->E, QR_EINVAL, pos, "Cannot compare type: %s", type_name(a->t));
    val x = *a, y = *b;
    if (!cs) {
        x = case_map(R, a, 0);
        y = case_map(R, b, 0);
    }
    /* JS compares UTF-16 units; byte order equals code point order, which
     * differs only between supplementary and U+E000..U+FFFF characters */
    return key_cmp(x.u.s.p, x.u.s.n, y.u.s.p, y.u.s.n);
}

/* ------------------------------------------------------------- evaluator */

static val eval(rctx *R, const node *x, env *e);
static val apply_filter(rctx *R, val op, const node *f, env *e);
static val filter_gen(rctx *R, val op, const node *f, env *e);
static void gen_use(rctx *R, const val *v, int measure, long pos);
static void exec_body(rctx *R, const nlist *body, env *e, abuf *out);

static void eval_args(rctx *R, const nlist *l, env *e, val **out, size_t *nout)
{
    val *args = aalloc(R->E, (l->n + 1) * sizeof *args);
    size_t n = 0;
    val kw = {.t = V_UNDEF};
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i]->kind != N_KWARG)
            args[n++] = eval(R, l->v[i], e);
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i]->kind == N_KWARG) {
            if (kw.t == V_UNDEF)
                kw = mkobj(R, V_KW);
            if (obj_find(kw.u.o, l->v[i]->s, l->v[i]->n))
                efail(R->E, QR_EINVAL, (long)l->v[i]->pos, "Got multiple values for keyword argument '%.*s'", (int)l->v[i]->n, l->v[i]->s);
            obj_set(R, kw.u.o, l->v[i]->s, l->v[i]->n, eval(R, l->v[i]->a, e));
        }
    }
    if (kw.t != V_UNDEF)
        args[n++] = kw;
    *out = args;
    *nout = n;
}

static long long slice_idx(rctx *R, const val *v, long long dflt, int *given, long pos)
{
    if (v->t == V_UNDEF) {
        *given = 0;
        return dflt;
    }
    if (v->t != V_INT)
        efail(R->E, QR_EINVAL, pos, "slice indices must be integers or undefined");
    *given = 1;
    return v->u.i;
}

static val eval_slice(rctx *R, const val *obj_, const node *s, env *e)
{
    long pos = (long)s->pos;
    if (obj_->t != V_ARR && obj_->t != V_STR)
        efail(R->E, QR_EINVAL, pos, "Slice object must be an array or string");
    val sv = s->a ? eval(R, s->a, e) : mkundef();
    val ev = s->b ? eval(R, s->b, e) : mkundef();
    val tv = s->c ? eval(R, s->c, e) : mkundef();
    arr *src = obj_->t == V_ARR ? obj_->u.a : str_chars(R, obj_);
    long long len = (long long)src->n;
    int g1, g2, g3;
    long long step = slice_idx(R, &tv, 1, &g3, pos);
    long long start, stop;
    if (step == 0)
        efail(R->E, QR_EINVAL, pos, "slice step cannot be zero");
    if (step > 0) {
        start = slice_idx(R, &sv, 0, &g1, pos);
        stop = slice_idx(R, &ev, len, &g2, pos);
        start = start < 0 ? (len + start > 0 ? len + start : 0) : (start < len ? start : len);
        stop = stop < 0 ? (len + stop > 0 ? len + stop : 0) : (stop < len ? stop : len);
    } else {
        start = slice_idx(R, &sv, len - 1, &g1, pos);
        stop = slice_idx(R, &ev, -1, &g2, pos);
        start = start < 0 ? (len + start > -1 ? len + start : -1) : (start < len - 1 ? start : len - 1);
        stop = stop < -1 ? (len + stop > -1 ? len + stop : -1) : (stop < len - 1 ? stop : len - 1);
    }
    arr *res = arr_new(R);
    for (long long i = start; step > 0 ? i < stop : i > stop; i += step)
        arr_push(R, res, src->v[i]);
    if (obj_->t == V_ARR)
        return mkarr(res);
    abuf b = {0};
    for (size_t i = 0; i < res->n; i++)
        ab_put(R, &b, res->v[i].u.s.p, res->v[i].u.s.n);
    return b.p ? ab_val(&b) : mkstr("", 0);
}

static val eval_member(rctx *R, const node *x, env *e)
{
    val o = eval(R, x->a, e);
    val prop;
    long pos = (long)x->pos;
    if (o.t == V_UNDEF) /* jinja2: an attribute or item of Undefined raises UndefinedError */
        efail(R->E, QR_EINVAL, pos, "UndefinedError: cannot read an attribute or item of an undefined value");
    if (x->flag) {
        if (x->b->kind == N_SLICE)
            return eval_slice(R, &o, x->b, e);
        prop = eval(R, x->b, e);
    } else if (x->b->kind == N_INT) {
        prop = mkint(x->b->i);
    } else {
        prop = mkstr(x->b->s, x->b->n);
    }
    if (is_objlike(&o)) {
        if (prop.t != V_STR)
            efail(R->E, QR_EINVAL, pos, "Cannot access property with non-string: got %s", type_name(prop.t));
        val *v = obj_find(o.u.o, prop.u.s.p, prop.u.s.n);
        if (v)
            return *v;
        return o.t == V_NS ? mkundef() : builtin_attr(R, &o, prop.u.s.p, prop.u.s.n);
    }
    if (o.t == V_ARR && (o.view || o.gen) && prop.t != V_STR) /* not subscriptable: jinja2 gives Undefined */
        return mkundef();
    if (o.t == V_ARR || o.t == V_STR) {
        if (prop.t == V_INT) {
            if (o.t == V_ARR) {
                long long i = prop.u.i < 0 ? (long long)o.u.a->n + prop.u.i : prop.u.i;
                return i >= 0 && i < (long long)o.u.a->n ? o.u.a->v[i] : mkundef();
            }
            arr *c = str_chars(R, &o);
            long long i = prop.u.i < 0 ? (long long)c->n + prop.u.i : prop.u.i;
            return i >= 0 && i < (long long)c->n ? c->v[i] : mkundef();
        }
        if (prop.t == V_STR)
            return builtin_attr(R, &o, prop.u.s.p, prop.u.s.n);
        efail(R->E, QR_EINVAL, pos, "Cannot access property with non-string/non-number: got %s", type_name(prop.t));
    }
    if (prop.t != V_STR)
        efail(R->E, QR_EINVAL, pos, "Cannot access property with non-string: got %s", type_name(prop.t));
    return mkundef();
}

/* Python's name of a value's type, for error messages. */
static const char *py_type(int t)
{
    switch (t) {
    case V_UNDEF: return "Undefined";
    case V_NULL: return "NoneType";
    case V_BOOL: return "bool";
    case V_INT: return "int";
    case V_FLOAT: return "float";
    case V_STR: return "str";
    case V_ARR: return "list";
    case V_NS: return "Namespace";
    case V_FUNC: return "function";
    default: return "dict";
    }
}

/* Python ordering of two strs (code points) or two lists (element by
 * element, then length); other pairs are a TypeError. */
static int py_order(rctx *R, const val *a, const val *b, int depth, long pos)
{
    if (depth > R->t->lim.max_depth)
        efail(R->E, QR_ELIMIT, pos, "comparison nesting deeper than %d", R->t->lim.max_depth);
    int an = a->t == V_INT || a->t == V_FLOAT || a->t == V_BOOL, bn = b->t == V_INT || b->t == V_FLOAT || b->t == V_BOOL;
    if (an && bn) {
        double x = a->t == V_INT ? (double)a->u.i : a->t == V_FLOAT ? a->u.f : a->u.b;
        double y = b->t == V_INT ? (double)b->u.i : b->t == V_FLOAT ? b->u.f : b->u.b;
        return x < y ? -1 : x > y;
    }
    if (a->t == V_STR && b->t == V_STR)
        return key_cmp(a->u.s.p, a->u.s.n, b->u.s.p, b->u.s.n);
    if (a->t == V_ARR && b->t == V_ARR && !a->gen && !b->gen) {
        size_t n = a->u.a->n < b->u.a->n ? a->u.a->n : b->u.a->n;
        for (size_t i = 0; i < n; i++)
            if (!py_eq(&a->u.a->v[i], &b->u.a->v[i]))
                return py_order(R, &a->u.a->v[i], &b->u.a->v[i], depth + 1, pos);
        return a->u.a->n < b->u.a->n ? -1 : a->u.a->n > b->u.a->n;
    }
    efail(R->E, QR_EINVAL, pos, "TypeError: '<' not supported between instances of '%s' and '%s'", py_type(a->t),
          py_type(b->t));
}

static val num_result(double r, int isfloat)
{
    return isfloat ? mkfloat(r) : mkint((long long)r);
}

static val eval_binary(rctx *R, const node *x, env *e)
{
    long pos = (long)x->pos;
    const char *op = x->s;
    size_t on = x->n;
#define OP(s) (on == sizeof(s) - 1 && !memcmp(op, s, on))
    val l = eval(R, x->a, e);
    if (OP("and"))
        return truthy(&l) ? eval(R, x->b, e) : l;
    if (OP("or"))
        return truthy(&l) ? l : eval(R, x->b, e);
    val r = eval(R, x->b, e);
    if (OP("=="))
        return mkbool(py_eq(&l, &r));
    if (OP("!="))
        return mkbool(!py_eq(&l, &r));
    int in = OP("in"), notin = OP("not in");
    if (OP("~")) { /* str(l) + str(r): Undefined is "", None "None" */
        abuf b = {0};
        raw_str(R, &b, &l, pos);
        raw_str(R, &b, &r, pos);
        return b.p ? ab_val(&b) : mkstr("", 0);
    }
    if (r.t == V_UNDEF && (in || notin)) /* iterating Undefined yields nothing */
        return mkbool(notin);
    if (in || notin)
        gen_use(R, &r, 0, pos);
    if ((in || notin) && (r.t == V_OBJ || r.t == V_KW) && l.t != V_STR) { /* a dict's keys are strings */
        if ((l.t == V_ARR && !l.gen) || l.t == V_OBJ || l.t == V_KW || l.t == V_NS)
            efail(R->E, QR_EINVAL, pos, "TypeError: unhashable type: '%s'", py_type(l.t));
        return mkbool(notin);
    }
    if ((l.t == V_UNDEF && !((in || notin) && r.t == V_ARR)) || r.t == V_UNDEF) /* jinja2 UndefinedError */
        efail(R->E, QR_EINVAL, pos, "UndefinedError: Cannot perform operation %.*s on an undefined value", (int)on, op);
    if ((l.t == V_STR) != (r.t == V_STR) && OP("+")) /* Python TypeError */
        efail(R->E, QR_EINVAL, pos, l.t == V_STR ? "TypeError: can only concatenate str (not \"%s\") to str"
                                                 : "TypeError: unsupported operand type(s) for +: '%s' and 'str'",
              py_type(l.t == V_STR ? r.t : l.t));
    if ((l.t == V_NULL || r.t == V_NULL) && !((in || notin) && r.t == V_ARR))
        efail(R->E, QR_EINVAL, pos, "TypeError: unsupported operand type(s) for %.*s: '%s' and '%s'", (int)on, op,
              py_type(l.t), py_type(r.t));
    if (!(in || notin) && (OP("+") || OP("*")) && ((l.t == V_ARR && l.view) || (r.t == V_ARR && r.view)))
        efail(R->E, QR_EINVAL, pos, "TypeError: unsupported operand type(s) for %.*s: a dict view", (int)on, op);
    if (!(in || notin) && ((l.t == V_ARR && l.gen) || (r.t == V_ARR && r.gen)))
        efail(R->E, QR_EINVAL, pos, "TypeError: unsupported operand type(s) for %.*s: a generator", (int)on, op);
    if (!(in || notin)) { /* a Python bool is an int in arithmetic and comparisons */
        if (l.t == V_BOOL)
            l = mkint(l.u.b);
        if (r.t == V_BOOL)
            r = mkint(r.u.b);
    }
    if (OP("*") && ((l.t == V_STR && r.t == V_INT) || (l.t == V_INT && r.t == V_STR))) { /* str repetition */
        const val *sv = l.t == V_STR ? &l : &r;
        long long k = l.t == V_INT ? l.u.i : r.u.i;
        if (k > 0 && sv->u.s.n && (unsigned long long)k > R->t->lim.max_output_bytes / sv->u.s.n)
            efail(R->E, QR_ELIMIT, pos, "string repetition exceeds %zu bytes", R->t->lim.max_output_bytes);
        abuf b = {0};
        for (long long i = 0; i < k; i++)
            ab_put(R, &b, sv->u.s.p, sv->u.s.n);
        return b.p ? ab_val(&b) : mkstr("", 0);
    }
    if (OP("*") && ((l.t == V_ARR && r.t == V_INT) || (l.t == V_INT && r.t == V_ARR))) { /* list repetition */
        const val *av = l.t == V_ARR ? &l : &r;
        long long k = l.t == V_INT ? l.u.i : r.u.i;
        if (k > 0 && av->u.a->n && (unsigned long long)k > R->t->lim.max_loop_iterations / av->u.a->n)
            efail(R->E, QR_ELIMIT, pos, "list repetition exceeds %zu items", R->t->lim.max_loop_iterations);
        arr *a = arr_new(R);
        for (long long i = 0; i < k; i++)
            for (size_t j = 0; j < av->u.a->n; j++)
                arr_push(R, a, av->u.a->v[j]);
        return mkarr(a);
    }
    if (((l.t == V_STR && r.t == V_STR) || (l.t == V_ARR && r.t == V_ARR)) &&
        (OP("<") || OP(">") || OP("<=") || OP(">="))) { /* code point / element order */
        int c = py_order(R, &l, &r, 0, pos);
        return mkbool(OP("<") ? c < 0 : OP(">") ? c > 0 : OP("<=") ? c <= 0 : c >= 0);
    }
    int ln = l.t == V_INT || l.t == V_FLOAT, rn = r.t == V_INT || r.t == V_FLOAT;
    if (OP("**") && (ln || l.t == V_BOOL) && (rn || r.t == V_BOOL)) {
        double a = l.t == V_INT ? (double)l.u.i : l.t == V_FLOAT ? l.u.f : l.u.b;
        double b = r.t == V_INT ? (double)r.u.i : r.t == V_FLOAT ? r.u.f : r.u.b;
        if (a == 0 && b < 0)
            efail(R->E, QR_EINVAL, pos, "0.0 cannot be raised to a negative power");
        double res = pow(a, b);
        if (!isfinite(res))
            efail(R->E, QR_EINVAL, pos, "Exponentiation result is not a finite real number");
        return num_result(res, l.t == V_FLOAT || r.t == V_FLOAT || b < 0);
    }
    if (ln && rn) {
        double a = l.t == V_INT ? (double)l.u.i : l.u.f;
        double b = r.t == V_INT ? (double)r.u.i : r.u.f;
        int fl = l.t == V_FLOAT || r.t == V_FLOAT;
        if (OP("+") || OP("-") || OP("*")) {
            if (!fl) {
                long long ia = l.u.i, ib = r.u.i;
                return mkint(OP("+") ? ia + ib : OP("-") ? ia - ib : ia * ib);
            }
            return mkfloat(OP("+") ? a + b : OP("-") ? a - b : a * b);
        }
        if ((OP("/") || OP("//") || OP("%")) && b == 0) /* Python raises ZeroDivisionError */
            efail(R->E, QR_EINVAL, pos, "ZeroDivisionError: division by zero");
        if (OP("/"))
            return mkfloat(a / b);
        if (OP("//") || OP("%")) {
            if (OP("//"))
                return num_result(floor(a / b), fl);
            if (fl) { /* Python: the result takes the divisor's sign */
                if (b == 0)
                    efail(R->E, QR_EINVAL, pos, "float modulo");
                double m = fmod(a, b);
                if (m == 0)
                    return mkfloat(copysign(0.0, b)); /* Python: a zero takes the divisor's sign too */
                return mkfloat((m < 0) != (b < 0) ? m + b : m);
            }
            long long m = l.u.i % r.u.i;
            return mkint(m != 0 && (m < 0) != (r.u.i < 0) ? m + r.u.i : m);
        }
        if (OP("<"))
            return mkbool(a < b);
        if (OP(">"))
            return mkbool(a > b);
        if (OP(">="))
            return mkbool(a >= b);
        if (OP("<="))
            return mkbool(a <= b);
    } else if (l.t == V_ARR && r.t == V_ARR && !(in || notin)) {
        if (OP("+")) {
            arr *a = arr_new(R);
            for (size_t i = 0; i < l.u.a->n; i++)
                arr_push(R, a, l.u.a->v[i]);
            for (size_t i = 0; i < r.u.a->n; i++)
                arr_push(R, a, r.u.a->v[i]);
            return mkarr(a);
        }
    } else if (r.t == V_ARR) {
        if (in || notin) {
            int found = 0;
            for (size_t i = 0; i < r.u.a->n && !found; i++)
                found = py_eq(&r.u.a->v[i], &l);
            return mkbool(in ? found : !found);
        }
    }
    if ((l.t == V_STR || r.t == V_STR) && OP("+")) {
        abuf b = {0};
        raw_str(R, &b, &l, pos);
        raw_str(R, &b, &r, pos);
        return b.p ? ab_val(&b) : mkstr("", 0);
    }
    if (l.t == V_STR && r.t == V_STR && (in || notin)) {
        int f = memfind(r.u.s.p, r.u.s.n, l.u.s.p, l.u.s.n) != NULL;
        return mkbool(in ? f : !f);
    }
    if (l.t == V_STR && (r.t == V_OBJ || r.t == V_KW) && (in || notin)) {
        int f = obj_find(r.u.o, l.u.s.p, l.u.s.n) != NULL;
        return mkbool(in ? f : !f);
    }
    efail(R->E, QR_EINVAL, pos, "Unknown operator \"%.*s\" between %s and %s", (int)on, op, type_name(l.t), type_name(r.t));
#undef OP
}

static int run_test(rctx *R, const char *name, size_t n, const val *v, const val *arg, long pos)
{
#define IS(s) (n == sizeof(s) - 1 && !memcmp(name, s, n))
    if (IS("boolean"))
        return v->t == V_BOOL;
    if (IS("callable"))
        return v->t == V_FUNC;
    if (IS("odd") || IS("even")) { /* value % 2 == 1 / == 0, Python's % */
        if (v->t == V_FLOAT) {
            double m = fmod(v->u.f, 2);
            if (m < 0)
                m += 2;
            return IS("odd") ? m == 1 : m == 0;
        }
        if (v->t != V_INT && v->t != V_BOOL)
            efail(R->E, QR_EINVAL, pos, "TypeError: cannot test %s for %.*s", py_type(v->t), (int)n, name);
        long long i = v->t == V_INT ? v->u.i : v->u.b;
        return IS("odd") ? i % 2 != 0 : i % 2 == 0;
    }
    if (IS("false"))
        return v->t == V_BOOL && !v->u.b;
    if (IS("true"))
        return v->t == V_BOOL && v->u.b;
    if (IS("none"))
        return v->t == V_NULL;
    if (IS("string"))
        return v->t == V_STR;
    if (IS("number")) /* a bool is a Number */
        return v->t == V_INT || v->t == V_FLOAT || v->t == V_BOOL;
    if (IS("integer"))
        return v->t == V_INT;
    if (IS("iterable"))
        return v->t == V_ARR || v->t == V_STR || v->t == V_OBJ || v->t == V_KW || v->t == V_UNDEF;
    if (IS("mapping"))
        return v->t == V_OBJ || v->t == V_KW;
    if (IS("sequence")) /* has len() and [] (a generator has neither, a dict view no []; Undefined has both) */
        return (v->t == V_ARR && !v->gen && !v->view) || v->t == V_OBJ || v->t == V_KW || v->t == V_STR || v->t == V_UNDEF;
    if (IS("lower") || IS("upper")) { /* str(v).islower() / isupper(): some cased letter, none of the other case */
        abuf b = {0};
        to_str(R, &b, v, pos);
        const utf8proc_uint8_t *sp = (const utf8proc_uint8_t *)(b.p ? b.p : "");
        utf8proc_ssize_t sn = (utf8proc_ssize_t)b.n, i = 0;
        int up = IS("upper"), cased = 0, wrong = 0;
        while (i < sn) {
            int32_t cp;
            utf8proc_ssize_t k = utf8proc_iterate(sp + i, sn - i, &cp);
            if (k < 1)
                break;
            utf8proc_category_t c = utf8proc_category(cp);
            if (c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LT)
                *(up ? &cased : &wrong) = 1;
            else if (c == UTF8PROC_CATEGORY_LL)
                *(up ? &wrong : &cased) = 1;
            i += k;
        }
        return cased && !wrong;
    }
    if (IS("defined"))
        return v->t != V_UNDEF;
    if (IS("undefined"))
        return v->t == V_UNDEF;
    if (IS("equalto") || IS("eq")) {
        val u = arg ? *arg : mkundef();
        if (v->t == V_UNDEF && u.t == V_UNDEF)
            return 1;
        return py_eq(v, &u);
    }
    efail(R->E, QR_EINVAL, pos, "Unknown test: %.*s", (int)n, name);
#undef IS
}

/* Stable merge sort with an error-raising comparator. */
static void sort_vals(rctx *R, val *v, size_t n, const val *keys, int cs, int rev, long pos)
{
    if (n < 2)
        return; /* nothing to order (an empty array has no storage) */
    size_t *idx = aalloc(R->E, (n + 1) * sizeof *idx), *tmp = aalloc(R->E, (n + 1) * sizeof *tmp);
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                int c = cmp_values(R, &keys[idx[j]], &keys[idx[i]], cs, pos);
                if (rev)
                    c = -c;
                tmp[k++] = c < 0 ? idx[j++] : idx[i++];
            }
            while (i < mid)
                tmp[k++] = idx[i++];
            while (j < hi)
                tmp[k++] = idx[j++];
        }
        memcpy(idx, tmp, n * sizeof *idx);
    }
    val *copy = aalloc(R->E, (n + 1) * sizeof *copy);
    for (size_t i = 0; i < n; i++)
        copy[i] = v[idx[i]];
    memcpy(v, copy, n * sizeof *v);
}

static val attr_path(rctx *R, const val *item, const char *p, size_t n)
{
    val v = *item;
    size_t i = 0;
    for (;;) {
        size_t j = i;
        while (j < n && p[j] != '.')
            j++;
        if (is_objlike(&v)) {
            val *f = obj_find(v.u.o, p + i, j - i);
            v = f ? *f : mkundef();
        } else if (v.t == V_ARR) {
            char buf[32];
            snprintf(buf, sizeof buf, "%.*s", (int)(j - i < 31 ? j - i : 31), p + i);
            char *end;
            long long k = strtoll(buf, &end, 10);
            if (end == buf || k < 0 || k >= (long long)v.u.a->n)
                return mkundef();
            v = v.u.a->v[k];
        } else {
            return mkundef();
        }
        if (j >= n)
            return v;
        i = j + 1;
    }
    (void)R;
}

static val apply_filter(rctx *R, val op, const node *f, env *e)
{
    long pos = (long)f->pos;
    const char *name = f->s;
    size_t n = f->n;
#define IS(s) (n == sizeof(s) - 1 && !memcmp(name, s, n))
    if (op.t != V_STR && op.t != V_UNDEF &&
        (IS("trim") || IS("upper") || IS("lower") || IS("title") || IS("capitalize") || IS("replace") ||
         IS("safe"))) { /* jinja2 applies string filters to str(value); safe makes Markup(str(value)) */
        abuf b = {0};
        to_str(R, &b, &op, pos);
        op = b.p ? ab_val(&b) : mkstr("", 0);
    }
    if ((op.t == V_STR || op.t == V_OBJ || op.t == V_KW) &&
        (IS("list") || IS("sort") || IS("unique") || IS("select") || IS("reject") || IS("first") || IS("last") ||
         IS("join") || IS("map") || IS("selectattr") || IS("rejectattr") || (IS("reverse") && op.t != V_STR))) {
        /* iterating a str gives its characters, a dict its keys */
        if (op.t == V_STR) {
            op = mkarr(str_chars(R, &op));
        } else {
            val fn = mkfunc(R, F_O_KEYS, &op);
            op = call_func(R, &fn, NULL, 0, pos);
        }
    }
    if (op.t == V_STR && IS("reverse")) { /* a str reversed is a str */
        arr *c = str_chars(R, &op);
        abuf b = {0};
        for (size_t i = c->n; i > 0; i--)
            ab_put(R, &b, c->v[i - 1].u.s.p, c->v[i - 1].u.s.n);
        return b.p ? ab_val(&b) : mkstr("", 0);
    }
    if (IS("string")) { /* str(value); Undefined gives "" */
        abuf b = {0};
        to_str(R, &b, &op, pos);
        return b.p ? ab_val(&b) : mkstr("", 0);
    }
    if ((IS("int") || IS("float") || IS("abs") || IS("round")) && op.t == V_BOOL)
        op = mkint(op.u.b);
    if ((IS("int") || IS("float")) && !f->flag)
        return py_int_float(R, &op, IS("int"), IS("int") ? mkint(0) : mkfloat(0), pos);
    if (op.t == V_UNDEF) { /* jinja2's Undefined reads as "" for string filters, empty for sequence ones */
        if (IS("trim") || IS("upper") || IS("lower") || IS("title") || IS("capitalize") || IS("string") ||
            IS("replace") || IS("safe"))
            op = mkstr("", 0);
        else if (IS("list") || IS("length") || IS("count") || IS("join") || IS("reverse") || IS("sort") ||
                 IS("unique") || IS("select") || IS("reject") || IS("selectattr") || IS("rejectattr") ||
                 IS("map") || IS("first") || IS("last"))
            op = mkarr(arr_new(R));
    }
    if (!f->flag) {
        if (IS("safe"))
            return op;
        if (IS("tojson")) {
            abuf b = {0};
            jopts o = {0};
            to_json_ab(R, &b, &op, &o, 1, pos);
            return ab_val(&b);
        }
        if (op.t == V_ARR) {
            arr *a = op.u.a;
            if (IS("list"))
                return op;
            if (IS("first"))
                return a->n ? a->v[0] : mkundef();
            if (IS("last"))
                return a->n ? a->v[a->n - 1] : mkundef();
            if (IS("length") || IS("count"))
                return mkint((long long)a->n);
            if (IS("reverse")) {
                arr *r = arr_new(R);
                for (size_t i = a->n; i > 0; i--)
                    arr_push(R, r, a->v[i - 1]);
                return mkarr(r);
            }
            if (IS("sort")) {
                arr *r = arr_new(R);
                for (size_t i = 0; i < a->n; i++)
                    arr_push(R, r, a->v[i]);
                sort_vals(R, r->v, r->n, a->v, 0, 0, pos);
                return mkarr(r);
            }
            if (IS("join")) {
                abuf b = {0};
                for (size_t i = 0; i < a->n; i++)
                    raw_str(R, &b, &a->v[i], pos);
                return b.p ? ab_val(&b) : mkstr("", 0);
            }
            if (IS("string")) {
                abuf b = {0};
                to_str(R, &b, &op, pos);
                return ab_val(&b);
            }
            if (IS("unique")) {
                /* jinja2: first of each group of items equal as set keys, strings compared
                   lower-cased (case_sensitive=False); lists and dicts are unhashable */
                arr *r = arr_new(R), *keys = arr_new(R);
                for (size_t i = 0; i < a->n; i++) {
                    val k = a->v[i];
                    if (k.t == V_ARR || k.t == V_OBJ || k.t == V_KW)
                        efail(R->E, QR_EINVAL, pos, "TypeError: unhashable type: '%s'", py_type(k.t));
                    if (k.t == V_STR)
                        k = case_map(R, &k, 0);
                    int seen = 0;
                    for (size_t j = 0; j < keys->n && !seen; j++)
                        seen = py_eq(&keys->v[j], &k);
                    if (!seen) {
                        arr_push(R, keys, k);
                        arr_push(R, r, a->v[i]);
                    }
                }
                return mkarr(r);
            }
            if (IS("select") || IS("reject")) { /* items that are (select) or are not truthy */
                arr *r = arr_new(R);
                for (size_t i = 0; i < a->n; i++)
                    if (truthy(&a->v[i]) == IS("select"))
                        arr_push(R, r, a->v[i]);
                return mkarr(r);
            }
            efail(R->E, QR_EINVAL, pos, "Unknown ArrayValue filter: %.*s", (int)n, name);
        }
        if (op.t == V_STR) {
            if (IS("length") || IS("count")) /* len(str): code points */
                return mkint((long long)str_chars(R, &op)->n);
            if (IS("title"))
                return title_case(R, &op, 1);
            if (IS("upper") || IS("lower") || IS("capitalize")) {
                val fn = builtin_attr(R, &op, name, n);
                return call_func(R, &fn, NULL, 0, pos);
            }
            if (IS("trim"))
                return str_trim(&op, 1, 1);
            if (IS("indent")) {
                abuf b = {0};
                const char *p = op.u.s.p, *end = p + op.u.s.n;
                int first = 1;
                for (;;) {
                    const char *nl = memchr(p, '\n', (size_t)(end - p));
                    size_t ln = nl ? (size_t)(nl - p) : (size_t)(end - p);
                    if (!first)
                        ab_put(R, &b, "\n", 1);
                    if (!first && ln)
                        ab_put(R, &b, "    ", 4);
                    ab_put(R, &b, p, ln);
                    first = 0;
                    if (!nl)
                        break;
                    p = nl + 1;
                }
                return b.p ? ab_val(&b) : mkstr("", 0);
            }
            if (IS("join") || IS("string"))
                return op;
            if (IS("int") || IS("float")) {
                char buf[128];
                snprintf(buf, sizeof buf, "%.*s", (int)(op.u.s.n < 127 ? op.u.s.n : 127), op.u.s.p);
                const char *s = buf;
                while (*s && ws_at(s, strlen(s)))
                    s += ws_at(s, strlen(s));
                char *end;
                if (IS("int")) {
                    long long v = strtoll(s, &end, 10);
                    return mkint(end == s ? 0 : v);
                }
                double d = strtod(s, &end);
                return mkfloat(end == s ? 0.0 : d);
            }
            efail(R->E, QR_EINVAL, pos, "Unknown StringValue filter: %.*s", (int)n, name);
        }
        if (op.t == V_INT || op.t == V_FLOAT) {
            if (IS("round"))
                return do_round(R, &op, 0, "common", pos);
            if (IS("abs"))
                return op.t == V_INT ? mkint(op.u.i < 0 ? -op.u.i : op.u.i) : mkfloat(fabs(op.u.f));
            if (IS("int"))
                return op.t == V_INT ? op : mkint((long long)floor(op.u.f));
            if (IS("float"))
                return mkfloat(op.t == V_INT ? (double)op.u.i : op.u.f);
            if (IS("string")) {
                abuf b = {0};
                to_str(R, &b, &op, pos);
                return ab_val(&b);
            }
            efail(R->E, QR_EINVAL, pos, "Unknown NumericValue filter: %.*s", (int)n, name);
        }
        if (op.t == V_OBJ || op.t == V_KW) {
            if (IS("items")) {
                val fn = mkfunc(R, F_O_ITEMS, &op);
                return call_func(R, &fn, NULL, 0, pos);
            }
            if (IS("dictsort")) { /* (key, value) pairs by key, case-insensitive as jinja2's default */
                val fn = mkfunc(R, F_O_ITEMS, &op);
                val it = call_func(R, &fn, NULL, 0, pos);
                arr *keys = arr_new(R);
                for (size_t i = 0; i < it.u.a->n; i++)
                    arr_push(R, keys, it.u.a->v[i].u.a->v[0]);
                sort_vals(R, it.u.a->v, it.u.a->n, keys->v, 0, 0, pos);
                return it;
            }
            if (IS("length") || IS("count"))
                return mkint((long long)op.u.o->n);
            val fn = builtin_attr(R, &op, name, n);
            if (fn.t == V_FUNC)
                return call_func(R, &fn, NULL, 0, pos);
            efail(R->E, QR_EINVAL, pos, "Unknown ObjectValue filter: %.*s", (int)n, name);
        }
        if (op.t == V_BOOL) {
            if (IS("bool"))
                return op;
            if (IS("int"))
                return mkint(op.u.b);
            if (IS("float"))
                return mkfloat(op.u.b);
            if (IS("string"))
                return mkstr(op.u.b ? "true" : "false", op.u.b ? 4 : 5);
            efail(R->E, QR_EINVAL, pos, "Unknown BooleanValue filter: %.*s", (int)n, name);
        }
        efail(R->E, QR_EINVAL, pos, "Cannot apply filter \"%.*s\" to type: %s", (int)n, name, type_name(op.t));
    }
    /* filter with arguments */
    val *args;
    size_t nargs;
    if (IS("tojson")) {
        eval_args(R, &f->l1, e, &args, &nargs);
        val ind = kwarg(args, nargs, "indent"), asc = kwarg(args, nargs, "ensure_ascii");
        val srt = kwarg(args, nargs, "sort_keys"), sep = kwarg(args, nargs, "separators");
        jopts o = {0};
        if (ind.t == V_INT)
            o.indent = ind.u.i;
        else if (ind.t != V_UNDEF && ind.t != V_NULL)
            efail(R->E, QR_EINVAL, pos, "If set, indent must be a number");
        if (asc.t == V_BOOL)
            o.ascii = asc.u.b;
        else if (asc.t != V_UNDEF)
            efail(R->E, QR_EINVAL, pos, "If set, ensure_ascii must be a boolean");
        if (srt.t == V_BOOL)
            o.sort = srt.u.b;
        else if (srt.t != V_UNDEF)
            efail(R->E, QR_EINVAL, pos, "If set, sort_keys must be a boolean");
        if (sep.t == V_ARR) {
            if (sep.u.a->n != 2 || sep.u.a->v[0].t != V_STR || sep.u.a->v[1].t != V_STR)
                efail(R->E, QR_EINVAL, pos, "separators must be a tuple of two strings");
            o.isep = sep.u.a->v[0].u.s.p;
            o.isepn = sep.u.a->v[0].u.s.n;
            o.ksep = sep.u.a->v[1].u.s.p;
            o.ksepn = sep.u.a->v[1].u.s.n;
        } else if (sep.t != V_UNDEF && sep.t != V_NULL) {
            efail(R->E, QR_EINVAL, pos, "If set, separators must be a tuple of two strings");
        }
        abuf b = {0};
        to_json_ab(R, &b, &op, &o, 1, pos);
        return ab_val(&b);
    }
    if (IS("join")) {
        arr *items;
        if (op.t == V_STR)
            items = str_chars(R, &op);
        else if (op.t == V_ARR)
            items = op.u.a;
        else
            efail(R->E, QR_EINVAL, pos, "Cannot apply filter \"join\" to type: %s", type_name(op.t));
        eval_args(R, &f->l1, e, &args, &nargs);
        val sep = npos(args, nargs) ? args[0] : kwarg(args, nargs, "separator");
        if (sep.t == V_UNDEF)
            sep = mkstr("", 0);
        if (sep.t != V_STR)
            efail(R->E, QR_EINVAL, pos, "separator must be a string");
        abuf b = {0};
        for (size_t i = 0; i < items->n; i++) {
            if (i)
                ab_put(R, &b, sep.u.s.p, sep.u.s.n);
            raw_str(R, &b, &items->v[i], pos);
        }
        return b.p ? ab_val(&b) : mkstr("", 0);
    }
    if (IS("default")) {
        eval_args(R, &f->l1, e, &args, &nargs);
        size_t np = npos(args, nargs);
        val d = np > 0 ? args[0] : mkstr("", 0);
        val bl = np > 1 ? args[1] : kwarg(args, nargs, "boolean");
        if (bl.t == V_UNDEF)
            bl = mkbool(0);
        if (bl.t != V_BOOL)
            efail(R->E, QR_EINVAL, pos, "`default` filter flag must be a boolean");
        if (op.t == V_UNDEF || (bl.u.b && !truthy(&op)))
            return d;
        return op;
    }
    if (IS("round")) {
        eval_args(R, &f->l1, e, &args, &nargs);
        size_t np = npos(args, nargs);
        val pr = np > 0 ? args[0] : kwarg(args, nargs, "precision");
        val me = np > 1 ? args[1] : kwarg(args, nargs, "method");
        if ((pr.t != V_UNDEF && pr.t != V_INT) || (me.t != V_UNDEF && me.t != V_STR))
            efail(R->E, QR_EINVAL, pos, "round(precision=int, method=str)");
        char mbuf[16] = "common";
        if (me.t == V_STR)
            snprintf(mbuf, sizeof mbuf, "%.*s", (int)(me.u.s.n < 15 ? me.u.s.n : 15), me.u.s.p);
        return do_round(R, &op, pr.t == V_INT ? pr.u.i : 0, mbuf, pos);
    }
    if (IS("int") || IS("float")) {
        eval_args(R, &f->l1, e, &args, &nargs);
        size_t np = npos(args, nargs);
        val d = np > 0 ? args[0] : kwarg(args, nargs, "default");
        if (d.t == V_UNDEF)
            d = IS("int") ? mkint(0) : mkfloat(0);
        return py_int_float(R, &op, IS("int"), d, pos);
    }
    if (op.t == V_ARR) {
        arr *a = op.u.a;
        if (IS("sort")) {
            eval_args(R, &f->l1, e, &args, &nargs);
            size_t np = npos(args, nargs);
            val rev = np > 0 ? args[0] : kwarg(args, nargs, "reverse");
            val cs = np > 1 ? args[1] : kwarg(args, nargs, "case_sensitive");
            val at = np > 2 ? args[2] : kwarg(args, nargs, "attribute");
            if (rev.t == V_UNDEF)
                rev = mkbool(0);
            if (cs.t == V_UNDEF)
                cs = mkbool(0);
            if (rev.t != V_BOOL)
                efail(R->E, QR_EINVAL, pos, "reverse must be a boolean");
            if (cs.t != V_BOOL)
                efail(R->E, QR_EINVAL, pos, "case_sensitive must be a boolean");
            val *keys = aalloc(R->E, (a->n + 1) * sizeof *keys);
            for (size_t i = 0; i < a->n; i++) {
                if (at.t == V_STR) {
                    keys[i] = attr_path(R, &a->v[i], at.u.s.p, at.u.s.n);
                } else if (at.t == V_INT) {
                    char buf[32];
                    snprintf(buf, sizeof buf, "%lld", at.u.i);
                    keys[i] = attr_path(R, &a->v[i], buf, strlen(buf));
                } else if (at.t == V_UNDEF || at.t == V_NULL) {
                    keys[i] = a->v[i];
                } else {
                    efail(R->E, QR_EINVAL, pos, "attribute must be a string, integer, or null");
                }
            }
            arr *r = arr_new(R);
            for (size_t i = 0; i < a->n; i++)
                arr_push(R, r, a->v[i]);
            /* sort indices by keys: sort a copy of (key) with values in step */
            size_t nn = r->n;
            {
                size_t *idx = aalloc(R->E, (nn + 1) * sizeof *idx), *tmp = aalloc(R->E, (nn + 1) * sizeof *tmp);
                for (size_t i = 0; i < nn; i++)
                    idx[i] = i;
                for (size_t w = 1; w < nn; w *= 2)
                    for (size_t lo = 0; lo < nn; lo += 2 * w) {
                        size_t mid = lo + w < nn ? lo + w : nn, hi = lo + 2 * w < nn ? lo + 2 * w : nn;
                        size_t i = lo, j = mid, k = lo;
                        while (i < mid && j < hi) {
                            int c = cmp_values(R, &keys[idx[j]], &keys[idx[i]], cs.u.b, pos);
                            if (rev.u.b)
                                c = -c;
                            tmp[k++] = c < 0 ? idx[j++] : idx[i++];
                        }
                        while (i < mid)
                            tmp[k++] = idx[i++];
                        while (j < hi)
                            tmp[k++] = idx[j++];
                        memcpy(idx + lo, tmp + lo, (hi - lo) * sizeof *idx);
                    }
                for (size_t i = 0; i < nn; i++)
                    r->v[i] = a->v[idx[i]];
            }
            return mkarr(r);
        }
        if (IS("select") || IS("reject")) { /* select('test', arg): items passing the test */
            int sel = IS("select");
            eval_args(R, &f->l1, e, &args, &nargs);
            size_t np = npos(args, nargs);
            if (np && args[0].t != V_STR)
                efail(R->E, QR_EINVAL, pos, "`%.*s`: the test name must be a string", (int)n, name);
            arr *r = arr_new(R);
            for (size_t i = 0; i < a->n; i++) {
                int res = np ? run_test(R, args[0].u.s.p, args[0].u.s.n, &a->v[i], np > 1 ? &args[1] : NULL, pos)
                             : truthy(&a->v[i]);
                if (sel ? res : !res)
                    arr_push(R, r, a->v[i]);
            }
            return mkarr(r);
        }
        if (IS("selectattr") || IS("rejectattr")) {
            int sel = IS("selectattr");
            for (size_t i = 0; i < f->l1.n; i++)
                if (f->l1.v[i]->kind != N_STR)
                    efail(R->E, QR_EINVAL, pos, "arguments of `%.*s` must be strings", (int)n, name);
            if (f->l1.n == 0)
                efail(R->E, QR_EINVAL, pos, "`%.*s` needs an attribute name", (int)n, name);
            const node *attr = f->l1.v[0];
            const node *tn = f->l1.n > 1 ? f->l1.v[1] : NULL;
            val tv = f->l1.n > 2 ? mkstr(f->l1.v[2]->s, f->l1.v[2]->n) : mkundef();
            arr *r = arr_new(R);
            for (size_t i = 0; i < a->n; i++) {
                int ob = a->v[i].t == V_OBJ || a->v[i].t == V_KW || a->v[i].t == V_NS; /* else: Undefined */
                val *av = ob ? obj_find(a->v[i].u.o, attr->s, attr->n) : NULL, u = mkundef();
                int res = tn ? run_test(R, tn->s, tn->n, av ? av : &u, &tv, pos) : av && truthy(av);
                if (sel ? res : !res)
                    arr_push(R, r, a->v[i]);
            }
            return mkarr(r);
        }
        if (IS("map")) {
            eval_args(R, &f->l1, e, &args, &nargs);
            val at = kwarg(args, nargs, "attribute");
            if (at.t == V_UNDEF && npos(args, nargs) == 1 && args[0].t == V_STR) {
                /* map('filter'): that filter (without arguments) applied to every item */
                node fake = *f;
                fake.s = args[0].u.s.p;
                fake.n = args[0].u.s.n;
                fake.flag = 0;
                arr *r = arr_new(R);
                for (size_t i = 0; i < a->n; i++)
                    arr_push(R, r, filter_gen(R, a->v[i], &fake, e));
                return mkarr(r);
            }
            if (at.t == V_UNDEF)
                efail(R->E, QR_EUNSUPPORTED, pos, "`map` supports attribute= or one filter name without arguments");
            if (at.t != V_STR)
                efail(R->E, QR_EINVAL, pos, "attribute must be a string");
            val d = kwarg(args, nargs, "default");
            arr *r = arr_new(R);
            for (size_t i = 0; i < a->n; i++) { /* an item without the attribute (a str...) gives Undefined */
                val v = attr_path(R, &a->v[i], at.u.s.p, at.u.s.n);
                arr_push(R, r, v.t == V_UNDEF ? d : v);
            }
            return mkarr(r);
        }
        efail(R->E, QR_EINVAL, pos, "Unknown ArrayValue filter: %.*s", (int)n, name);
    }
    if (op.t == V_STR) {
        if (IS("indent")) {
            eval_args(R, &f->l1, e, &args, &nargs);
            size_t np = npos(args, nargs);
            val w = np > 0 ? args[0] : kwarg(args, nargs, "width");
            val fi = np > 1 ? args[1] : kwarg(args, nargs, "first");
            val bl = np > 2 ? args[2] : kwarg(args, nargs, "blank");
            if (w.t == V_UNDEF)
                w = mkint(4);
            if (w.t != V_INT)
                efail(R->E, QR_EINVAL, pos, "width must be a number");
            abuf b = {0};
            const char *p = op.u.s.p, *end = p + op.u.s.n;
            size_t line = 0;
            for (;;) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t ln = nl ? (size_t)(nl - p) : (size_t)(end - p);
                if (line)
                    ab_put(R, &b, "\n", 1);
                if (!((!truthy(&fi) && line == 0) || (!truthy(&bl) && ln == 0)))
                    for (long long s = 0; s < w.u.i; s++)
                        ab_put(R, &b, " ", 1);
                ab_put(R, &b, p, ln);
                line++;
                if (!nl)
                    break;
                p = nl + 1;
            }
            return b.p ? ab_val(&b) : mkstr("", 0);
        }
        if (IS("replace")) {
            eval_args(R, &f->l1, e, &args, &nargs);
            val fn = mkfunc(R, F_S_REPLACE, &op);
            return call_func(R, &fn, args, nargs, pos);
        }
        efail(R->E, QR_EINVAL, pos, "Unknown StringValue filter: %.*s", (int)n, name);
    }
    if (op.t == V_OBJ || op.t == V_KW) {
        val fn = builtin_attr(R, &op, name, n);
        if (fn.t == V_FUNC) {
            eval_args(R, &f->l1, e, &args, &nargs);
            return call_func(R, &fn, args, nargs, pos);
        }
        efail(R->E, QR_EINVAL, pos, "Unknown ObjectValue filter: %.*s", (int)n, name);
    }
    efail(R->E, QR_EINVAL, pos, "Cannot apply filter \"%.*s\" to type: %s", (int)n, name, type_name(op.t));
#undef IS
}

/* Filters whose jinja2 result is a generator (lazy): truthy even when empty,
 * no len(), not printable; made from a non-iterable value they only fail when
 * iterated. Everything that iterates or measures a value checks gen_use. */
static int lazy_filter(const node *f)
{
    static const char *L[] = {"select", "reject", "selectattr", "rejectattr", "map", "unique", "items"};
    for (size_t i = 0; i < sizeof L / sizeof L[0]; i++)
        if (f->n == strlen(L[i]) && !memcmp(f->s, L[i], f->n))
            return 1;
    return 0;
}

static void gen_use(rctx *R, const val *v, int measure, long pos)
{
    if (v->t != V_ARR || !v->gen)
        return;
    if (v->gen == 2)
        efail(R->E, QR_EINVAL, pos, "TypeError: the value given to select/reject/map/unique/items is not iterable");
    if (measure)
        efail(R->E, QR_EINVAL, pos, "TypeError: object of type 'generator' has no len()");
}

static val filter_gen(rctx *R, val op, const node *f, env *e)
{
    long pos = (long)f->pos;
    int lazy = lazy_filter(f), items = f->n == 5 && !memcmp(f->s, "items", 5);
    static const char *NONIT[] = {"string", "safe", "default", "upper", "lower", "title", "capitalize", "trim",
                                  "replace"}; /* these read str(value) or pass it on: no iteration */
    int nonit = 0;
    for (size_t i = 0; i < sizeof NONIT / sizeof NONIT[0]; i++)
        nonit |= f->n == strlen(NONIT[i]) && !memcmp(f->s, NONIT[i], f->n);
    if (lazy && op.t == V_ARR && op.gen == 2) { /* chained lazily: fails only when iterated */
        val g = mkarr(arr_new(R));
        g.gen = 2;
        return g;
    }
    if (((f->n == 7 && !memcmp(f->s, "reverse", 7)) || items) && op.t == V_UNDEF) {
        /* reversed(Undefined) is an iterator; items(Undefined) yields nothing */
        val g = mkarr(arr_new(R));
        g.gen = 1;
        return g;
    }
    if (op.t == V_ARR && op.gen && !nonit) {
        int measure = (f->n == 6 && !memcmp(f->s, "length", 6)) || (f->n == 5 && !memcmp(f->s, "count", 5)) ||
                      (f->n == 4 && !memcmp(f->s, "last", 4));
        gen_use(R, &op, measure, pos);
        if (f->n == 6 && !memcmp(f->s, "tojson", 6))
            efail(R->E, QR_EINVAL, pos, "TypeError: Object of type generator is not JSON serializable");
    }
    if (lazy && (items ? !(op.t == V_OBJ || op.t == V_KW || op.t == V_UNDEF)
                       : (op.t == V_INT || op.t == V_FLOAT || op.t == V_BOOL || op.t == V_NULL))) {
        if (f->flag)
            eval_args(R, &f->l1, e, &(val *){NULL}, &(size_t){0}); /* arguments are still evaluated */
        val g = mkarr(arr_new(R));
        /* select/reject/selectattr/rejectattr/map skip a false value ("if value: for item in value") */
        int guarded = !items && !(f->n == 6 && !memcmp(f->s, "unique", 6));
        g.gen = guarded && !truthy(&op) ? 1 : 2;
        return g;
    }
    val r;
    if (lazy) {
        /* jinja2 runs these lazily: an error inside (a test that fails on an item) only surfaces
           when the generator is iterated, so it becomes a generator that fails then; limits
           (QR_ELIMIT) still stop the render */
        jmp_buf saved;
        memcpy(saved, R->E->jb, sizeof saved);
        volatile int failed = 0, depth = R->depth;
        if (setjmp(R->E->jb) == 0)
            r = apply_filter(R, op, f, e);
        else
            failed = 1;
        memcpy(R->E->jb, saved, sizeof saved);
        if (failed) {
            if (R->E->code == QR_ELIMIT)
                longjmp(R->E->jb, 1);
            R->E->code = 0;
            R->E->msg[0] = 0;
            R->depth = depth;
            r = mkarr(arr_new(R));
            r.gen = 2;
            return r;
        }
    } else {
        r = apply_filter(R, op, f, e);
    }
    if ((lazy && r.t == V_ARR) || (f->n == 7 && !memcmp(f->s, "reverse", 7) && r.t == V_ARR &&
                                        ((op.t == V_ARR && !op.gen) || op.t == V_OBJ || op.t == V_KW))) {
        r.gen = 1; /* reverse of a list is reversed(list), an iterator */
        r.tuple = 0;
    } else if (r.t == V_ARR && f->n == 4 && !memcmp(f->s, "list", 4)) {
        r.gen = 0; /* list(generator) is a list */
        r.view = 0;
    }
    return r;
}

static val eval(rctx *R, const node *x, env *e)
{
    if (!x)
        return mkundef();
    if (++R->depth > R->t->lim.max_depth)
        efail(R->E, QR_ELIMIT, (long)x->pos, "evaluation deeper than %d", R->t->lim.max_depth);
    val r;
    switch (x->kind) {
    case N_INT: r = mkint(x->i); break;
    case N_FLOAT: r = mkfloat(x->f); break;
    case N_STR:
    case N_TEXT: r = mkstr(x->s, x->n); break;
    case N_ARRAY:
    case N_TUPLE: {
        arr *a = arr_new(R);
        for (size_t i = 0; i < x->l1.n; i++)
            arr_push(R, a, eval(R, x->l1.v[i], e));
        r = mkarr(a);
        r.tuple = x->kind == N_TUPLE;
        break;
    }
    case N_OBJECT: {
        r = mkobj(R, V_OBJ);
        for (size_t i = 0; i < x->l1.n; i++) {
            val k = eval(R, x->l1.v[i], e);
            if (k.t != V_STR)
                efail(R->E, QR_EINVAL, (long)x->l1.v[i]->pos, "Object keys must be strings: got %s", type_name(k.t));
            obj_set(R, r.u.o, k.u.s.p, k.u.s.n, eval(R, x->l2.v[i], e));
        }
        break;
    }
    case N_IDENT: {
        val *v = env_lookup(e, x->s, x->n);
        r = v ? *v : mkundef();
        break;
    }
    case N_CALL: {
        val *args;
        size_t nargs;
        eval_args(R, &x->l1, e, &args, &nargs);
        val fn = eval(R, x->a, e);
        if (fn.t != V_FUNC)
            efail(R->E, QR_EINVAL, (long)x->pos, "Cannot call something that is not a function: got %s", type_name(fn.t));
        r = call_func(R, &fn, args, nargs, (long)x->pos);
        if (fn.fn == F_O_KEYS || fn.fn == F_O_VALUES || fn.fn == F_O_ITEMS) /* a dict view, not a list */
            r.view = fn.fn == F_O_KEYS ? 1 : fn.fn == F_O_VALUES ? 2 : 3;
        break;
    }
    case N_MEMBER: r = eval_member(R, x, e); break;
    case N_UNARY: {
        val a = eval(R, x->a, e);
        if (x->n == 3) {
            r = mkbool(!truthy(&a));
        } else {
            int sign = x->s[0] == '-' ? -1 : 1;
            if (a.t == V_FLOAT)
                r = mkfloat(sign * a.u.f);
            else if (a.t == V_INT || a.t == V_BOOL)
                r = mkint(sign * (a.t == V_INT ? a.u.i : a.u.b));
            else
                efail(R->E, QR_EINVAL, (long)x->pos, "Unknown operator \"%c\" for %s", x->s[0], type_name(a.t));
        }
        break;
    }
    case N_BINARY: r = eval_binary(R, x, e); break;
    case N_FILTER: r = filter_gen(R, eval(R, x->a, e), x, e); break;
    case N_TEST: {
        val a = eval(R, x->a, e);
        int t = run_test(R, x->s, x->n, &a, NULL, (long)x->pos);
        r = mkbool(x->flag ? !t : t);
        break;
    }
    case N_SELECT: {
        val c = eval(R, x->b, e);
        r = truthy(&c) ? eval(R, x->a, e) : mkundef();
        break;
    }
    case N_TERNARY: {
        val c = eval(R, x->a, e);
        r = truthy(&c) ? eval(R, x->b, e) : eval(R, x->c, e);
        break;
    }
    case N_SLICE:
        efail(R->E, QR_EINVAL, (long)x->pos, "slice outside of a subscript");
    default:
        efail(R->E, QR_EINTERNAL, (long)x->pos, "unexpected node in expression");
    }
    R->depth--;
    return r;
}

static void assign(rctx *R, env *e, const node *target, val v)
{
    if (target->kind == N_IDENT) {
        obj_set(R, &e->vars, target->s, target->n, v);
    } else if (target->kind == N_TUPLE) {
        if (v.t != V_ARR)
            efail(R->E, QR_EINVAL, (long)target->pos, "Cannot unpack non-iterable type in set: %s", type_name(v.t));
        if (v.u.a->n != target->l1.n)
            efail(R->E, QR_EINVAL, (long)target->pos, "Too %s items to unpack in set", target->l1.n > v.u.a->n ? "few" : "many");
        for (size_t i = 0; i < target->l1.n; i++) {
            if (target->l1.v[i]->kind != N_IDENT)
                efail(R->E, QR_EINVAL, (long)target->pos, "Cannot unpack to non-identifier in set");
            obj_set(R, &e->vars, target->l1.v[i]->s, target->l1.v[i]->n, v.u.a->v[i]);
        }
    } else if (target->kind == N_MEMBER) {
        val o = eval(R, target->a, e);
        if (o.t != V_NS)
            efail(R->E, QR_EINVAL, (long)target->pos, "cannot assign attribute on non-namespace object");
        if (target->flag || target->b->kind != N_IDENT)
            efail(R->E, QR_EINVAL, (long)target->pos, "Cannot assign to member with non-identifier property");
        obj_set(R, o.u.o, target->b->s, target->b->n, v);
    } else {
        efail(R->E, QR_EINVAL, (long)target->pos, "Invalid LHS inside assignment expression");
    }
}

static void exec_for(rctx *R, const node *x, env *e, abuf *out)
{
    env *scope = env_new(R, e);
    const node *it = x->b, *test = NULL;
    if (it->kind == N_SELECT) {
        test = it->b;
        it = it->a;
    }
    val iv = eval(R, it, scope);
    if (iv.t == V_OBJ || iv.t == V_KW) {
        val fn = mkfunc(R, F_O_KEYS, &iv);
        iv = call_func(R, &fn, NULL, 0, (long)x->pos);
    }
    gen_use(R, &iv, 0, (long)x->b->pos);
    if (iv.t == V_STR) /* a Python str iterates over its characters */
        iv = mkarr(str_chars(R, &iv));
    if (iv.t == V_UNDEF) /* iterating Undefined yields nothing */
        iv = mkarr(arr_new(R));
    if (iv.t != V_ARR)
        efail(R->E, QR_EINVAL, (long)x->b->pos, "Expected iterable or object type in for loop: got %s", type_name(iv.t));
    arr *items = arr_new(R);
    for (size_t i = 0; i < iv.u.a->n; i++) {
        val cur = iv.u.a->v[i];
        if (x->a->kind == N_TUPLE) {
            if (cur.t != V_ARR)
                efail(R->E, QR_EINVAL, (long)x->a->pos, "Cannot unpack non-iterable type: %s", type_name(cur.t));
            if (cur.u.a->n != x->a->l1.n)
                efail(R->E, QR_EINVAL, (long)x->a->pos, "Too %s items to unpack", x->a->l1.n > cur.u.a->n ? "few" : "many");
        }
        if (test) {
            env *ls = env_new(R, scope);
            assign(R, ls, x->a, cur);
            val tv = eval(R, test, ls);
            if (!truthy(&tv))
                continue;
        }
        arr_push(R, items, cur);
    }
    int none = 1;
    for (size_t i = 0; i < items->n; i++) {
        if (++R->iterations > R->t->lim.max_loop_iterations)
            efail(R->E, QR_ELIMIT, (long)x->pos, "more than %zu loop iterations", R->t->lim.max_loop_iterations);
        val loop = mkobj(R, V_OBJ);
        obj *lo = loop.u.o;
        size_t len = items->n;
        obj_set(R, lo, "index", 5, mkint((long long)i + 1));
        obj_set(R, lo, "index0", 6, mkint((long long)i));
        obj_set(R, lo, "revindex", 8, mkint((long long)(len - i)));
        obj_set(R, lo, "revindex0", 9, mkint((long long)(len - i - 1)));
        obj_set(R, lo, "first", 5, mkbool(i == 0));
        obj_set(R, lo, "last", 4, mkbool(i == len - 1));
        obj_set(R, lo, "length", 6, mkint((long long)len));
        obj_set(R, lo, "previtem", 8, i > 0 ? items->v[i - 1] : mkundef());
        obj_set(R, lo, "nextitem", 8, i + 1 < len ? items->v[i + 1] : mkundef());
        obj_set(R, &scope->vars, "loop", 4, loop);
        assign(R, scope, x->a, items->v[i]);
        exec_body(R, &x->l1, scope, out);
        if (R->ctl) {
            int c = R->ctl;
            R->ctl = 0;
            /* jinja2 keeps what the iteration printed before break / continue */
            if (c == 1)
                break;
            continue;
        }
        none = 0;
    }
    if (none)
        exec_body(R, &x->l2, scope, out);
}

static void exec_body(rctx *R, const nlist *body, env *e, abuf *out)
{
    if (++R->depth > R->t->lim.max_depth)
        efail(R->E, QR_ELIMIT, -1, "blocks nested deeper than %d", R->t->lim.max_depth);
    for (size_t i = 0; i < body->n && !R->ctl; i++) {
        const node *x = body->v[i];
        switch (x->kind) {
        case N_TEXT:
            ab_put(R, out, x->s, x->n);
            break;
        case N_COMMENT:
            break;
        case N_SET: {
            val v;
            if (x->flag) {
                abuf b = {0};
                exec_body(R, &x->l1, e, &b);
                v = b.p ? ab_val(&b) : mkstr("", 0);
            } else {
                v = eval(R, x->b, e);
            }
            assign(R, e, x->a, v);
            break;
        }
        case N_IF: {
            val c = eval(R, x->a, e);
            exec_body(R, truthy(&c) ? &x->l1 : &x->l2, e, out);
            break;
        }
        case N_FOR:
            exec_for(R, x, e, out);
            break;
        case N_BREAK:
            R->ctl = 1;
            break;
        case N_CONTINUE:
            R->ctl = 2;
            break;
        default: {
            val v = eval(R, x, e);
            to_str(R, out, &v, (long)x->pos); /* None prints "None", Undefined "" */
        }
        }
        if (out->n > R->t->lim.max_output_bytes)
            efail(R->E, QR_ELIMIT, (long)x->pos, "output exceeds %zu bytes", R->t->lim.max_output_bytes);
    }
    R->depth--;
}

/* JSON -> value. Keys that are canonical array indices come first in
 * ascending order, as JS objects order them. */
static int index_key(const char *k, unsigned long *out)
{
    if (!*k || (k[0] == '0' && k[1]) || strlen(k) > 9)
        return 0;
    unsigned long v = 0;
    for (const char *p = k; *p; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        v = v * 10 + (unsigned long)(*p - '0');
    }
    *out = v;
    return 1;
}

static val from_json(rctx *R, const json_t *j, int depth)
{
    if (depth > R->t->lim.max_depth)
        efail(R->E, QR_ELIMIT, -1, "variables nested deeper than %d", R->t->lim.max_depth);
    switch (json_typeof(j)) {
    case JSON_NULL: return mknull();
    case JSON_TRUE: return mkbool(1);
    case JSON_FALSE: return mkbool(0);
    case JSON_INTEGER: return mkint((long long)json_integer_value(j));
    case JSON_REAL: {
        return mkfloat(json_real_value(j)); /* 2.0 stays a float, as json.loads gives */
    }
    case JSON_STRING: return mkstr(astrdup(R->E, json_string_value(j), json_string_length(j)), json_string_length(j));
    case JSON_ARRAY: {
        arr *a = arr_new(R);
        for (size_t i = 0; i < json_array_size(j); i++)
            arr_push(R, a, from_json(R, json_array_get(j, i), depth + 1));
        return mkarr(a);
    }
    case JSON_OBJECT: {
        val o = mkobj(R, V_OBJ);
        const char *k;
        json_t *v;
        size_t nidx = 0;
        json_object_foreach((json_t *)j, k, v) {
            unsigned long ix;
            if (index_key(k, &ix))
                nidx++;
        }
        if (nidx) {
            unsigned long last = 0;
            for (size_t c = 0; c < nidx; c++) { /* selection of the next larger index key */
                const char *bk = NULL;
                unsigned long best = 0;
                json_object_foreach((json_t *)j, k, v) {
                    unsigned long ix;
                    if (index_key(k, &ix) && (c == 0 || ix > last) && (!bk || ix < best)) {
                        bk = k;
                        best = ix;
                    }
                }
                last = best;
                obj_set(R, o.u.o, astrdup(R->E, bk, strlen(bk)), strlen(bk), from_json(R, json_object_get(j, bk), depth + 1));
            }
        }
        json_object_foreach((json_t *)j, k, v) {
            unsigned long ix;
            if (index_key(k, &ix))
                continue;
            size_t kn = strlen(k);
            obj_set(R, o.u.o, astrdup(R->E, k, kn), kn, from_json(R, v, depth + 1));
        }
        return o;
    }
    }
    return mkundef();
}

int qr_jinja_render(const qr_jinja *t, const json_t *vars, const qr_jinja_date *date, char **out, size_t *out_len)
{
    if (!t || !out)
        return qr_fail(QR_EINVAL, "jinja: render: NULL argument");
    if (vars && !json_is_object(vars))
        return qr_fail(QR_EINVAL, "jinja: render: variables must be a JSON object");
    arena ar = {0};
    ectx *E = calloc(1, sizeof *E);
    if (!E)
        return qr_fail(QR_ENOMEM, "jinja: out of memory");
    E->ar = &ar;
    E->orig = t->orig;
    E->map = t->map;
    E->maplen = t->maplen;
    rctx R = {.E = E, .t = t};
    if (date) {
        R.date = *date;
    } else {
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        R.date = (qr_jinja_date){tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min};
    }
    if (setjmp(E->jb)) {
        int code = E->code;
        qr_fail(code, "%s", E->msg);
        arena_free(&ar);
        free(E);
        return code;
    }
    env *g = env_new(&R, NULL);
    obj_set(&R, &g->vars, "false", 5, mkbool(0));
    obj_set(&R, &g->vars, "true", 4, mkbool(1));
    obj_set(&R, &g->vars, "none", 4, mknull());
    obj_set(&R, &g->vars, "False", 5, mkbool(0));
    obj_set(&R, &g->vars, "True", 4, mkbool(1));
    obj_set(&R, &g->vars, "None", 4, mknull());
    obj_set(&R, &g->vars, "namespace", 9, mkfunc(&R, F_NAMESPACE, NULL));
    obj_set(&R, &g->vars, "raise_exception", 15, mkfunc(&R, F_RAISE, NULL));
    obj_set(&R, &g->vars, "range", 5, mkfunc(&R, F_RANGE, NULL));
    obj_set(&R, &g->vars, "strftime_now", 12, mkfunc(&R, F_STRFTIME, NULL));
    if (vars) {
        val v = from_json(&R, vars, 0);
        for (size_t i = 0; i < v.u.o->n; i++)
            obj_set(&R, &g->vars, v.u.o->k[i], v.u.o->kn[i], v.u.o->v[i]);
    }
    abuf b = {0};
    exec_body(&R, &t->body, g, &b);
    char *res = malloc(b.n + 1);
    if (!res) {
        arena_free(&ar);
        free(E);
        return qr_fail(QR_ENOMEM, "jinja: out of memory");
    }
    if (b.n)
        memcpy(res, b.p, b.n);
    res[b.n] = 0;
    if (out_len)
        *out_len = b.n;
    *out = res;
    arena_free(&ar);
    free(E);
    return 0;
}
