/* Lexical analyzer for the BM25 index: Lucene's EnglishAnalyzer as Anserini's
 * BEIR "flat" runs use it.
 *
 *   StandardTokenizer      Unicode UAX#29 word segmentation as Lucene implements it:
 *                          letters/digits joined by the "mid" rules ("don't", "3.14",
 *                          "1,000", "U.S.A" -> "U.S.A"), "_" joins (ExtendNumLet);
 *                          each Han ideograph and each Hiragana character is its own
 *                          token, Katakana runs and South-East-Asian (Thai, Lao,
 *                          Myanmar, Khmer) runs are one token; every \p{Emoji} character
 *                          (text-default ones such as (c), (R), TM too; not # * 0-9) is a
 *                          token, with its modifiers, ZWJ sequences and flag pairs;
 *                          punctuation, symbols and spaces are dropped. Tokens longer than
 *                          255 UTF-16 units are split every 255 units (Lucene 7+).
 *   EnglishPossessiveFilter  drops a trailing 's / ’s / ＇s (any case of s)
 *   LowerCaseFilter        simple per-code-point lower case (Java Character.toLowerCase)
 *   StopFilter             EnglishAnalyzer.ENGLISH_STOP_WORDS_SET (33 words)
 *   PorterStemFilter       Lucene's PorterStemmer (Martin Porter's C version, with its
 *                          "bli"->"ble" and "logi"->"log" departures; words of < 3
 *                          UTF-16 units unchanged; non-ASCII letters are consonants)
 *
 * Known approximations (documented, irrelevant for English prose): the UAX#29
 * Word_Break property is derived from utf8proc categories plus the code point
 * lists of WordBreakProperty.txt for the punctuation classes; scripts (Han,
 * Hiragana, Katakana, Hebrew, SE Asian) by code point blocks; \p{Emoji} from a
 * table below U+1F000 and as Extended_Pictographic above. On BEIR SciFact the
 * index holds exactly Anserini's 838,128 terms. Invalid UTF-8 bytes decode to
 * U+FFFD (a separator). */
#ifndef QR_INDEX_ANALYZER_H
#define QR_INDEX_ANALYZER_H

#include <stdbool.h>
#include <stddef.h>

/* Longest text accepted by one qr_analyzer_run/tokenize call. */
#define QR_ANALYZER_MAX_TEXT ((size_t)256 << 20)
/* Lucene StandardAnalyzer.DEFAULT_MAX_TOKEN_LENGTH (UTF-16 units). */
#define QR_ANALYZER_MAX_TOKEN 255

typedef struct qr_analyzer qr_analyzer;

/* Called once per output term, in text order. term is NUL-terminated UTF-8,
 * borrowed until the callback returns. A non-zero return stops the run and is
 * returned by qr_analyzer_run/tokenize. */
typedef int (*qr_term_fn)(const char *term, size_t len, void *user);

/* Scratch state for one thread; *out freed with qr_analyzer_destroy. */
int qr_analyzer_create(qr_analyzer **out);
void qr_analyzer_destroy(qr_analyzer *a);

/* The full English analyzer chain. QR_ELIMIT when len > QR_ANALYZER_MAX_TEXT. */
int qr_analyzer_run(qr_analyzer *a, const char *text, size_t len, qr_term_fn fn, void *user);

/* StandardTokenizer alone (raw tokens, original case). */
int qr_analyzer_tokenize(qr_analyzer *a, const char *text, size_t len, qr_term_fn fn, void *user);

/* Porter stem of a lower-case UTF-8 word into out (NUL-terminated; cap must be
 * >= len + 1; the stem is never longer than the word). Returns the stem length,
 * or 0 when cap is too small. */
size_t qr_porter_stem(const char *word, size_t len, char *out, size_t cap);

/* Whether a (lower-case) term is in Lucene's English stop set. */
bool qr_english_stopword(const char *term, size_t len);

#endif
