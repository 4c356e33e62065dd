/* Analyzer tests. Expectations are derived by hand from UAX#29 word-break
 * rules, Lucene's documented EnglishAnalyzer chain and stop set, and Martin
 * Porter's published algorithm (the example words of "An algorithm for suffix
 * stripping", 1980, run through all steps by hand). */
#include <string.h>

#include "common/error.h"
#include "index/analyzer.h"
#include "tests/unit/test.h"

typedef struct {
    char out[4096];
    size_t n;
} collect;

static int add_term(const char *t, size_t len, void *user)
{
    collect *c = user;
    if (c->n + len + 2 < sizeof c->out) {
        if (c->n)
            c->out[c->n++] = '|';
        memcpy(c->out + c->n, t, len);
        c->n += len;
        c->out[c->n] = 0;
    }
    return 0;
}

static qr_analyzer *A;

static void tok_is(const char *text, const char *want)
{
    collect c = {{0}, 0};
    CHECK_OK(qr_analyzer_tokenize(A, text, strlen(text), add_term, &c));
    CHECK_MSG(strcmp(c.out, want) == 0, "tokenize \"%s\": got [%s] want [%s]", text, c.out, want);
}

static void an_is(const char *text, const char *want)
{
    collect c = {{0}, 0};
    CHECK_OK(qr_analyzer_run(A, text, strlen(text), add_term, &c));
    CHECK_MSG(strcmp(c.out, want) == 0, "analyze \"%s\": got [%s] want [%s]", text, c.out, want);
}

static void stem_is(const char *w, const char *want)
{
    char out[256];
    size_t n = qr_porter_stem(w, strlen(w), out, sizeof out);
    CHECK_MSG(n == strlen(want) && strcmp(out, want) == 0, "stem %s: got %s want %s", w, out, want);
}

static int stop_after(const char *t, size_t len, void *user)
{
    (void)t;
    (void)len;
    int *n = user;
    return ++*n == 2 ? 42 : 0;
}

int main(void)
{
    CHECK_OK(qr_analyzer_create(&A));

    /* --- StandardTokenizer (UAX#29) --- */
    tok_is("", "");
    tok_is("  ,;. --- ", "");
    tok_is("Hello, world!", "Hello|world");
    tok_is("don't", "don't");                     /* WB6/7: letter ' letter */
    tok_is("don\xE2\x80\x99t", "don\xE2\x80\x99t"); /* right single quotation mark is MidNumLet */
    tok_is("dogs' bowls", "dogs|bowls");          /* a trailing apostrophe is not part of the word */
    tok_is("U.S.A. rules", "U.S.A|rules");        /* WB6/7 with '.'; the final '.' breaks */
    tok_is("pi is 3.14, about", "pi|is|3.14|about"); /* WB11/12 */
    tok_is("1,000,000 people", "1,000,000|people");
    tok_is("1.2.3", "1.2.3");
    tok_is("a.1 1.a", "a|1|1|a");                  /* mixed letter/number across '.' breaks */
    tok_is("abc123 123abc", "abc123|123abc");     /* WB9/10 */
    tok_is("e-mail wi-fi", "e|mail|wi|fi");       /* hyphen breaks */
    tok_is("foo_bar _x x_ ___", "foo_bar|_x|x_"); /* ExtendNumLet joins; underscores alone are no token */
    tok_is("a:b", "a:b");                         /* ':' is MidLetter */
    tok_is("1:2", "1|2");                         /* ... but not MidNum */
    tok_is("x+y=z", "x|y|z");
    tok_is("email@example.com", "email|example.com");
    tok_is("caf\xC3\xA9 na\xC3\xAFve", "caf\xC3\xA9|na\xC3\xAFve");
    tok_is("cafe\xCC\x81!", "cafe\xCC\x81");       /* combining mark stays with its letter (WB4) */
    tok_is("\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E", "\xE6\x97\xA5|\xE6\x9C\xAC|\xE8\xAA\x9E"); /* 日本語: one token per ideograph */
    tok_is("\xE3\x81\xB2\xE3\x82\x89", "\xE3\x81\xB2|\xE3\x82\x89");   /* hiragana: one per character */
    tok_is("\xE3\x82\xAB\xE3\x82\xBF\xE3\x82\xAB\xE3\x83\x8A", "\xE3\x82\xAB\xE3\x82\xBF\xE3\x82\xAB\xE3\x83\x8A"); /* katakana run */
    tok_is("I \xF0\x9F\x98\x80 it", "I|\xF0\x9F\x98\x80|it");          /* emoji token */
    tok_is("\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD", "\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD"); /* with skin tone modifier */
    tok_is("\xF0\x9F\x87\xBA\xF0\x9F\x87\xB8\xF0\x9F\x87\xAC\xF0\x9F\x87\xA7",
           "\xF0\x9F\x87\xBA\xF0\x9F\x87\xB8|\xF0\x9F\x87\xAC\xF0\x9F\x87\xA7"); /* flags pair up */
    tok_is("Foo\xC2\xAE and \xE2\x84\xA2 \xE2\x86\x94", "Foo|\xC2\xAE|and|\xE2\x84\xA2|\xE2\x86\x94"); /* \p{Emoji}: ® ™ ↔ */
    tok_is("\xE2\x98\x86 \xE2\x86\x92 \xC2\xB1 \xC2\xB2", "");   /* ☆ → ± ²: not Emoji, not letters */
    tok_is("\xEF\xBC\x91\xEF\xBC\x92", "\xEF\xBC\x91\xEF\xBC\x92");   /* fullwidth digits are Numeric in Lucene */
    tok_is("bad\xFFutf8", "bad|utf8");
    tok_is("x\xE2\x80\x8D\xF0\x9F\x98\x80", "x\xE2\x80\x8D|\xF0\x9F\x98\x80"); /* a ZWJ after a letter joins no emoji */
    tok_is("-\xE2\x80\x8D\xE2\x84\xA2", "\xE2\x84\xA2");                                   /* invalid byte -> U+FFFD -> break */
    {
        /* 300 letters: split at 255 UTF-16 units */
        char big[301];
        memset(big, 'x', 300);
        big[300] = 0;
        collect c = {{0}, 0};
        CHECK_OK(qr_analyzer_tokenize(A, big, 300, add_term, &c));
        CHECK_INT(c.n, 300 + 1);
        CHECK(c.out[255] == '|');
    }

    /* --- stop set: EnglishAnalyzer.ENGLISH_STOP_WORDS_SET (33 words) --- */
    const char *stops[] = {"a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into",
                           "is", "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then",
                           "there", "these", "they", "this", "to", "was", "will", "with"};
    CHECK_INT(sizeof stops / sizeof stops[0], 33);
    for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++)
        CHECK_MSG(qr_english_stopword(stops[i], strlen(stops[i])), "%s", stops[i]);
    CHECK(!qr_english_stopword("i", 1));
    CHECK(!qr_english_stopword("were", 4));
    CHECK(!qr_english_stopword("The", 3)); /* the set is applied after lower-casing */
    {   /* nothing else: every a-z term of 1 to 4 letters, and of 5 starting with t, against the list */
        char w[8] = {0};
        long bad = 0, hits = 0;
        for (size_t len = 1; len <= 5; len++) {
            long total = 1;
            for (size_t i = 0; i < len; i++)
                total *= 26;
            for (long x = 0; x < total; x++) {
                long y = x;
                for (size_t i = len; i-- > 0; y /= 26)
                    w[i] = (char)('a' + y % 26);
                w[len] = 0;
                if (len == 5 && w[0] != 't')
                    continue;
                bool want = false;
                for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++)
                    want = want || strcmp(stops[i], w) == 0;
                hits += want;
                bad += want != qr_english_stopword(w, len);
            }
        }
        CHECK_INT(bad, 0);
        CHECK_INT(hits, 33);
    }

    /* --- Porter: the paper's examples through all steps --- */
    static const char *const pairs[][2] = {
        {"caresses", "caress"}, {"ponies", "poni"}, {"ties", "ti"}, {"caress", "caress"}, {"cats", "cat"},
        {"feed", "feed"}, {"agreed", "agre"}, {"plastered", "plaster"}, {"bled", "bled"}, {"motoring", "motor"},
        {"sing", "sing"}, {"conflated", "conflat"}, {"troubled", "troubl"}, {"sized", "size"}, {"hopping", "hop"},
        {"tanned", "tan"}, {"falling", "fall"}, {"hissing", "hiss"}, {"fizzed", "fizz"}, {"failing", "fail"},
        {"filing", "file"}, {"happy", "happi"}, {"sky", "sky"}, {"relational", "relat"},
        {"conditional", "condit"}, {"rational", "ration"}, {"valenci", "valenc"}, {"hesitanci", "hesit"},
        {"digitizer", "digit"}, {"conformabli", "conform"}, {"radicalli", "radic"}, {"differentli", "differ"},
        {"vileli", "vile"}, {"analogousli", "analog"}, {"vietnamization", "vietnam"}, {"predication", "predic"},
        {"operator", "oper"}, {"feudalism", "feudal"}, {"decisiveness", "decis"}, {"hopefulness", "hope"},
        {"callousness", "callous"}, {"formaliti", "formal"}, {"sensitiviti", "sensit"},
        {"sensibiliti", "sensibl"}, {"triplicate", "triplic"}, {"formative", "form"}, {"formalize", "formal"},
        {"electriciti", "electr"}, {"electrical", "electr"}, {"hopeful", "hope"}, {"goodness", "good"},
        {"revival", "reviv"}, {"allowance", "allow"}, {"inference", "infer"}, {"airliner", "airlin"},
        {"gyroscopic", "gyroscop"}, {"adjustable", "adjust"}, {"defensible", "defens"}, {"irritant", "irrit"},
        {"replacement", "replac"}, {"adjustment", "adjust"}, {"dependent", "depend"}, {"adoption", "adopt"},
        {"homologou", "homolog"}, {"communism", "commun"}, {"activate", "activ"}, {"angulariti", "angular"},
        {"homologous", "homolog"}, {"effective", "effect"}, {"bowdlerize", "bowdler"}, {"probate", "probat"},
        {"rate", "rate"}, {"cease", "ceas"}, {"controll", "control"}, {"roll", "roll"},
        {"generalizations", "gener"}, {"oscillators", "oscil"},
        /* Lucene/C-version departures: -logi -> -log, -bli -> -ble */
        {"archaeology", "archaeolog"}, {"possibly", "possibl"},
        /* words of 1-2 letters are left alone */
        {"is", "is"}, {"as", "as"}, {"y", "y"},
        /* non-ASCII letters are consonants */
        {"caf\xC3\xA9s", "caf\xC3\xA9"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        stem_is(pairs[i][0], pairs[i][1]);

    /* --- the whole chain --- */
    an_is("The dog's owners don't like the U.S.A.", "dog|owner|don't|like|u.s.a");
    an_is("JOHN\xE2\x80\x99S running cats", "john|run|cat"); /* ’s possessive, then lower case */
    an_is("It is what it is, and that was THAT.", "what");
    an_is("Relational databases' generalizations", "relat|databas|gener");
    an_is("3.14 and 1,000", "3.14|1,000");

    /* a non-zero callback return stops the run */
    int cnt = 0;
    CHECK_INT(qr_analyzer_run(A, "one two three", 13, stop_after, &cnt), 42);
    CHECK_INT(cnt, 2);

    qr_analyzer_destroy(A);
    qr_analyzer_destroy(NULL);
    return qr_test_done();
}
