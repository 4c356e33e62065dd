/* A Jinja2 subset interpreter for chat templates.
 *
 * Semantics follow Python jinja2 as transformers' apply_chat_template sets it
 * up (the reference: tools/jinja_oracle, tests/fixtures/chat, checked on the
 * real chat templates and on seeded random templates): the template is
 * preprocessed with trim_blocks and lstrip_blocks on ({%+ turns lstrip off for
 * a tag) and one trailing newline dropped; values print as Python's str()
 * does (True/False/None, lists, tuples and dicts as repr(), floats as repr(),
 * dict.keys()/values()/items() as dict_keys([...])...); Undefined prints ""
 * and iterates as empty, but reading an attribute or item of it, arithmetic,
 * int/float/tojson of it fail (jinja2's default Undefined); str + non-str,
 * None in arithmetic, division by zero fail as Python does; `==` is Python
 * equality (deep for lists and dicts, 1 == 1.0 == True); comparisons chain
 * (a < b < c); `~` binds tighter than + and -; `%` and `//` take the
 * divisor's sign; string filters read str(value), sequence filters iterate a
 * str's characters or a dict's keys; select, reject, selectattr, rejectattr,
 * map, unique, items (and reverse of a list) give generators as in jinja2:
 * always true, no length, not indexable, and a failure inside them only
 * surfaces when they are iterated; tojson is json.dumps(ensure_ascii=False)
 * with ", " / ": " separators (or "," plus newline indentation with indent=N).
 *
 * Supported: text, {{ }}, {% %}, {# #} with '-' whitespace control; if/elif/
 * else, for (tuple targets, `if` filter, loop.* variables, else block; break /
 * continue keep what the iteration printed), set (name, tuple, namespace
 * attribute, block set); literals (int, float with exponent, string, list,
 * tuple, dict); attribute, index, slice access; calls with keyword arguments;
 * filters tojson, safe, list, first, last, length, reverse, sort, join,
 * string, unique, trim, upper, lower, title, capitalize, indent, int, float,
 * abs, round, items, dictsort, default, select, reject, selectattr,
 * rejectattr, map(attribute=) / map('filter'), replace, count; tests defined, undefined, none,
 * string, number, integer, boolean, mapping, iterable, sequence, callable,
 * odd, even, true, false, lower, upper, equalto/eq; string methods upper,
 * lower, strip/lstrip/rstrip (optional characters), title, capitalize,
 * startswith, endswith, split, replace; dict methods get, items, keys,
 * values; globals namespace(), range(), raise_exception(msg),
 * strftime_now(fmt). Anything else (macros, call/filter blocks, unknown
 * statements) fails at parse time with QR_EUNSUPPORTED and "line:col".
 *
 * Strings are UTF-8; length, indexing and slicing count code points, as
 * Python does. Known differences from jinja2: upper/lower/capitalize use
 * simple (1:1) case mapping (Python: "ß".upper() is "SS"); printf-style
 * `str % args` is not supported; a printed generator is "<generator object>"
 * (jinja2 adds its name and address); a generator can be iterated more than
 * once; jinja2 compiles a negative constant base as -(2 ** x), quire as
 * (-2) ** x; loop.cycle, the divisibleby test and test arguments without
 * parentheses are not supported.
 */
#ifndef QR_GENERATE_JINJA_H
#define QR_GENERATE_JINJA_H

#include <stddef.h>

#include <jansson.h>

typedef struct qr_jinja qr_jinja; /* a parsed template; immutable, shareable between threads */

/* Limits on user-controlled sizes; 0 picks the default shown. */
typedef struct {
    size_t max_template_bytes; /* 1 MiB */
    size_t max_output_bytes;   /* 16 MiB */
    size_t max_loop_iterations; /* 1,000,000 loop bodies per render */
    int max_depth;             /* 256: nesting of expressions and blocks */
} qr_jinja_limits;

/* Date used by strftime_now(fmt): fields as in struct tm (year = full year,
 * month 1-12). strftime_now formats it as Python's datetime.strftime does: the
 * C library's strftime in the C locale (English names; seconds are 0), with
 * %z and %Z empty (a naive datetime). */
typedef struct {
    int year, month, day, hour, minute;
} qr_jinja_date;

/* Parses src (len bytes, UTF-8). On failure returns QR_EFORMAT (syntax) or
 * QR_EUNSUPPORTED (construct not implemented) with "jinja: LINE:COL: what" in
 * qr_last_error(). lim may be NULL. *out is freed with qr_jinja_free. */
int qr_jinja_parse(const char *src, size_t len, const qr_jinja_limits *lim, qr_jinja **out);

void qr_jinja_free(qr_jinja *t);

/* Renders t with the variables of the JSON object vars (may be NULL).
 * date NULL means the current local time. On success *out is a malloc'd
 * NUL-terminated string (the caller frees it) and *out_len its length
 * (out_len may be NULL). Errors: QR_EINVAL for a template error at run time
 * ("jinja: LINE:COL: what"), and for raise_exception(msg), whose
 * qr_last_error() is "jinja: raise_exception: " followed by msg exactly;
 * QR_ELIMIT when a limit is exceeded; QR_ENOMEM. */
int qr_jinja_render(const qr_jinja *t, const json_t *vars, const qr_jinja_date *date, char **out,
                    size_t *out_len);

/* Prefix of qr_last_error() after raise_exception(msg). */
#define QR_JINJA_RAISE_PREFIX "jinja: raise_exception: "

#endif
