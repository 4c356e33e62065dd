"""Deterministic tokenizer test corpus for quire's oracle fixtures.

make_corpus(n) returns n strings (valid Unicode, no lone surrogates) drawn by a
seeded PRNG from generators that each stress one part of a tokenizer: scripts
and normalization, emoji sequences, whitespace runs, numbers, code, URLs, very
long words, punctuation runs, contractions, case, and text that looks like (or
contains) special tokens. Same n -> same corpus, always.

This is a line-by-line port of the former corpus.mjs (Node): the PRNG, every
draw and its order are the same, so make_corpus(10000) reproduces the npm-era
corpus.jsonl byte for byte. Where JavaScript and Python differ the JavaScript
behaviour is kept: list-literal arguments are evaluated before pick(),
trimEnd() strips only ECMAScript white space (not U+0085 or U+001C..U+001F).

unicode_coverage() adds strings that cover every Unicode block and general
category (tools/oracle/unicode_blocks.py); gen_fixtures.py appends them after
the make_corpus() strings.
"""

_M32 = 0xFFFFFFFF


def _imul(a, b):
    return (a * b) & _M32


def rng(seed):
    """mulberry32: small, well-known 32-bit PRNG; we only need determinism."""
    state = [seed & _M32]

    def next_float():
        state[0] = (state[0] + 0x6D2B79F5) & _M32
        t = state[0]
        t = _imul(t ^ (t >> 15), t | 1)
        t ^= (t + _imul(t ^ (t >> 7), t | 61)) & _M32
        return ((t ^ (t >> 14)) & _M32) / 4294967296

    return next_float


R = rng(20261121)


def int_(lo, hi):  # inclusive
    return lo + int(R() * (hi - lo + 1))


def pick(arr):
    return arr[int(R() * len(arr))]


def chance(p):
    return R() < p


cp = chr


def range_(lo, hi):
    return cp(int_(lo, hi))


def rep(n, f):
    return ''.join(f() for _ in range(n))


# ECMAScript WhiteSpace and LineTerminator (String.prototype.trimEnd).
_JS_WS = '\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a' \
         '\u2028\u2029\u202f\u205f\u3000\ufeff'


def js_trim_end(s):
    return s.rstrip(_JS_WS)


W = {
    "en": ['the', 'quick', 'brown', 'fox', 'jumps', 'over', 'lazy', 'dog', 'Hello', 'world', 'retrieval',
        'augmented', 'generation', 'tokenizer', 'embedding', 'cluster', 'GPU', 'Slurm', 'allocation',
        'offline', 'search', 'index', 'question', 'answer', 'citation', 'model', 'weights', 'layer',
        'attention', 'transformer', 'a', 'an', 'of', 'to', 'in', 'is', 'was', 'and', 'or', 'not',
        'unbelievable', 'antidisestablishmentarianism', 'internationalization', 'TensorFlow',
        'PyTorch', 'iPhone', 'McDonald', 'O\'Neil', 'naïve', 'café', 'résumé', 'coöperate', 'façade',
        'jalapeño', 'über', 'Zürich', 'São', 'Paulo', 'Ærø', 'smørrebrød', 'Łódź', 'Kraków', 'Ďakujem',
        'Straße', 'Ørsted', 'İstanbul', 'ıi', 'ǅemal', 'ﬁnance', 'ﬂow', 'Œuvre', 'ĳssel'],
    "ru": ['Привет', 'мир', 'как', 'дела', 'поиск', 'документ', 'ответ', 'вопрос', 'Москва', 'ёжик',
        'съешь', 'ещё', 'этих', 'мягких', 'французских', 'булок', 'ЗАГЛАВНЫЕ', 'Україна', 'їжак', 'Ґрунт'],
    "el": ['Γειά', 'σου', 'κόσμε', 'αναζήτηση', 'Ἀθῆναι', 'ψυχή', 'ΩΜΕΓΑ', 'λόγος', 'ἐν', 'ἀρχῇ', 'ἦν', 'ὁ'],
    "ar": ['مرحبا', 'بالعالم', 'البحث', 'عن', 'المعلومات', 'كتاب', 'السَّلَامُ', 'عَلَيْكُمْ', 'ﷺ', 'لا', 'ٱللَّٰه'],
    "he": ['שלום', 'עולם', 'חיפוש', 'מידע', 'בְּרֵאשִׁית', 'בָּרָא', 'אֱלֹהִים', 'ישראל'],
    "hi": ['नमस्ते', 'दुनिया', 'खोज', 'जानकारी', 'हिन्दी', 'क्षत्रिय', 'श्री', 'ज्ञान', 'संस्कृतम्', 'प्रश्न'],
    "bn": ['বাংলা', 'ভাষা', 'আমি', 'তোমাকে', 'ভালোবাসি'],
    "ta": ['தமிழ்', 'வணக்கம்', 'உலகம்'],
    "th": ['สวัสดี', 'ชาวโลก', 'ภาษาไทย', 'การค้นหา', 'ข้อมูล', 'กรุงเทพมหานคร', 'ไม่', 'เป็น', 'ไร'],
    "zh": ['你好', '世界', '检索', '增强', '生成', '模型', '中文', '分词器', '北京', '漢字', '繁體中文', '簡體',
        '我们', '是', '的', '一', '了', '人工智能', '机器学习', '深度学习', '龘', '𠀀', '𪚥', '𠮷野家'],
    "ja": ['こんにちは', '世界', 'カタカナ', 'ひらがな', '東京', '日本語', 'トークナイザー', 'ｶﾀｶﾅ', 'ﾊﾝｶｸ',
        'ゔ', 'ヴァイオリン', 'きゃ', 'がっこう', '〜', 'ー', '私は', '学生です'],
    "ko": ['안녕하세요', '세계', '검색', '한국어', '토크나이저', '읽다', '값', '뷁', '똠방각하'],
    "misc": ['Հայերեն', 'ქართული', 'ᐃᓄᒃᑎᑐᑦ', 'አማርኛ', 'ትግርኛ', 'ᠮᠣᠩᠭᠣᠯ', 'ཁམས་བཟང་',
        'ລາວ', 'ខ្មែរ', 'မြန်မာ', 'සිංහල', 'ગુજરાતી', 'ਪੰਜਾਬੀ', 'తెలుగు', 'ಕನ್ನಡ', 'മലയാളം', 'ଓଡ଼ିଆ',
        'Tiếng', 'Việt', 'Türkçe', 'Čeština', 'Română', 'Ελληνικά', 'ꦗꦮ', 'ߒߞߏ', 'ᏣᎳᎩ'],
}
SCRIPTS = list(W)

# Emoji: singles, skin tones, ZWJ families/professions, flags, keycaps, VS16.
EMOJI = ['😀', '😂', '🤣', '❤️', '❤', '👍', '🔥', '🎉', '🚀', '✨', '🙏', '🤖', '🧠', '📚', '🌍',
    '☕', '⭐', '✅', '❌', '⚠️', '♻️', '🏳️‍🌈', '🏴‍☠️', '👨‍👩‍👧‍👦', '👩‍💻', '🧑‍🔬', '👨🏽‍🚀', '🤷‍♀️',
    '🙋🏻‍♂️', '👁️‍🗨️', '❤️‍🔥', '🐕‍🦺', '🧔🏿', '🫠', '🥲', '🪐', '#️⃣', '1️⃣', '*️⃣', '©️', '™️', '〰️',
    '🏴󠁧󠁢󠁳󠁣󠁴󠁿', '🏴󠁧󠁢󠁥󠁮󠁧󠁿']
SKIN = [cp(c) for c in (0x1f3fb, 0x1f3fc, 0x1f3fd, 0x1f3fe, 0x1f3ff)]
SKINNABLE = ['👋', '👍', '✌', '🤞', '👏', '🙌', '💪', '🧑', '👶', '🏃', '🧘']
FLAGS = ['US', 'DE', 'FR', 'JP', 'CN', 'KR', 'IN', 'BR', 'IL', 'SA', 'TH', 'RU', 'GR', 'UA', 'EU', 'GB']


def flag(cc):
    return ''.join(cp(0x1f1e6 + ord(c) - 65) for c in cc)


def emoji():
    k = int_(0, 5)
    if k == 0:
        return pick(SKINNABLE) + pick(SKIN)
    if k == 1:
        return flag(pick(FLAGS))
    if k == 2:
        return rep(int_(2, 6), lambda: pick(EMOJI))
    if k == 3:  # random ZWJ chain of people
        ppl = ['👨', '👩', '👧', '👦', '🧑']
        return rep(1, lambda: '\u200d'.join([pick(ppl) for _ in range(int_(2, 4))]))
    if k == 4:
        return range_(0x1f300, 0x1f5ff) + range_(0x1f600, 0x1f64f)
    return pick(EMOJI)


# Whitespace of every kind tokenizers treat differently.
SPACES = [' ', ' ', ' ', '\t', '\n', '\r\n', '\r', '\u00a0', '\u2000', '\u2002', '\u2003', '\u2007',
    '\u2009', '\u200a', '\u202f', '\u205f', '\u3000', '\u1680', '\u2028', '\u2029', '\u0085', '\u000b',
    '\u000c', '\u200b', '\u200c', '\u200d', '\ufeff', '\u180e', '\u00ad']


def ws_run():
    k = int_(0, 6)
    if k == 0:
        return ' ' * int_(2, 40)
    if k == 1:
        return '\n' * int_(1, 6)
    if k == 2:
        return '\t' * int_(1, 5)
    if k == 3:
        return rep(int_(1, 4), lambda: '\r\n')
    if k == 4:
        return ' \n ' * int_(1, 3) + ' ' * int_(0, 3)
    return rep(int_(1, 6), lambda: pick(SPACES))


DIGITS = ['0123456789', '٠١٢٣٤٥٦٧٨٩', '۰۱۲۳۴۵۶۷۸۹', '०१२३४५६७८९', '০১২৩৪৫৬৭৮৯', '๐๑๒๓๔๕๖๗๘๙',
    '０１２３４５６７８９', '𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗', '⁰¹²³⁴⁵⁶⁷⁸⁹', '₀₁₂₃₄₅₆₇₈₉']


def digits(n, digit_set='0123456789'):
    s = list(digit_set)
    return rep(n, lambda: pick(s))


def number():
    k = int_(0, 11)
    if k == 0:
        return digits(int_(1, 4))
    if k == 1:
        return digits(int_(5, 40))
    if k == 2:
        return digits(int_(1, 3)) + ',' + digits(3) + ',' + digits(3)
    if k == 3:
        return digits(int_(1, 6)) + '.' + digits(int_(1, 8))
    if k == 4:
        return '-' + digits(int_(1, 3)) + 'e' + pick(['', '-', '+']) + digits(int_(1, 3))
    if k == 5:
        return '0x' + rep(int_(2, 16), lambda: pick(list('0123456789abcdefABCDEF')))
    if k == 6:
        return digits(int_(1, 12), pick(DIGITS))
    if k == 7:
        return f'{digits(4)}-{digits(2)}-{digits(2)}T{digits(2)}:{digits(2)}:{digits(2)}Z'
    if k == 8:
        return f'+1 ({digits(3)}) {digits(3)}-{digits(4)}'
    if k == 9:
        return f'${digits(int_(1, 7))}.{digits(2)}' + pick(['', '%', '€', ' USD', 'k', 'M'])
    if k == 10:
        return pick(['½', '¾', '⅓', '②', '⑩', 'Ⅻ', 'ⅷ', '²', '㊿', '⒇']) + digits(int_(0, 3))
    return f'v{int_(0, 20)}.{int_(0, 99)}.{int_(0, 999)}' + pick(['', '-rc1', '-beta.2', '+build.7'])


CODE = [
    '#include <stdio.h>\nint main(void) {\n    printf("hello, world\\n");\n    return 0;\n}\n',
    'for (size_t i = 0; i < n; ++i) { sum += a[i] * b[i]; }',
    'def fib(n):\n    """Return the n-th Fibonacci number."""\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n',
    'class Foo(Base):\n\tdef __init__(self, *args, **kwargs):\n\t\tsuper().__init__(*args, **kwargs)\n',
    'const add = (a, b) => a + b;\nconsole.log(`sum=${add(1, 2)}`);',
    'async function main() { const r = await fetch("/api/v1/search?q=x&k=10"); return r.json(); }',
    'fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!("{:?}", v);\n}',
    'impl<T: Clone + Send> Iterator for Foo<\'a, T> where T: \'static { type Item = &\'a T; }',
    'package main\n\nimport "fmt"\n\nfunc main() {\n\tfmt.Println("hi")\n}\n',
    'SELECT id, name FROM users WHERE age >= 18 AND name LIKE \'%son\' ORDER BY id DESC LIMIT 10;',
    '#!/bin/bash\nset -euo pipefail\nfor f in *.txt; do wc -l "$f" | awk \'{print $1}\'; done 2>&1 | tee log',
    'srun --gres=gpu:4 -N 2 --ntasks-per-node=4 ./quire serve --port $PORT && echo ok || exit 1',
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>T&amp;C</title></head><body><p class="x">Hi</p></body></html>',
    '{"name": "quire", "version": "0.1.0", "deps": ["jansson", "pcre2"], "ok": true, "n": null, "x": -1.5e-3}',
    'x = [i**2 for i in range(10) if i % 2 == 0]  # squares\nprint(f"{x!r:>20}")',
    'if (a != b && c <= d || !e) { x <<= 2; y >>= 1; z ^= ~w; p->q = *r++; }',
    'template <typename T> std::vector<T> f(const std::map<std::string, T>& m) noexcept;',
    '    \tindented_with_mixed_whitespace();\n\n\n        return;',
    'matrix = np.zeros((3, 4), dtype=np.float32)\nmatrix[:, ::2] += 1.0',
    '\\begin{equation} E = mc^2 \\quad \\int_0^\\infty e^{-x^2}\\,dx = \\frac{\\sqrt{\\pi}}{2} \\end{equation}',
    'key: value\nlist:\n  - a\n  - b: [1, 2]\n# comment\n---\n',
    '$ git log --oneline | head -n 5 && git diff HEAD~1 -- src/*.c',
    'public static void Main(string[] args) { Console.WriteLine("Hello"); }',
    'local t = {1, 2, 3}; for i, v in ipairs(t) do print(i, v) end',
    '(defun square (x) (* x x)) ;; lisp',
    'main :: IO ()\nmain = mapM_ print $ take 10 $ iterate (*2) 1',
    'my %h = (a => 1); print "$_\\n" for sort keys %h; # perl',
    'struct A { int x; } __attribute__((packed)); _Static_assert(sizeof(struct A) == 4, "size");',
]

URLS = ['https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2',
    'http://example.com/path/to/file.html?query=1&b=two#frag', 'ftp://ftp.gnu.org/gnu/',
    'https://例子.测试/路径?参数=值', 'https://en.wikipedia.org/wiki/Tokenization_(lexical_analysis)',
    'mailto:someone@example.org', 'user.name+tag@sub.domain.co.uk', 'www.github.com/ggerganov/llama.cpp',
    'file:///home/user/docs/report%20final.pdf', '/usr/local/lib/python3.11/site-packages/',
    'C:\\Users\\Admin\\Documents\\file.txt', 'https://xn--n3h.com/☃', '192.168.0.1:8080/api',
    '[2001:db8::1]:443', 'git@github.com:huggingface/tokenizers.git', 's3://bucket/key/obj.parquet']

CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'VE", "'M", "'LL",
    "'D", "’s", "’t", "’re", "’ll"]


def contraction():
    k = int_(0, 5)
    heads = ['I', 'you', 'we', 'they', 'he', 'she', 'it', 'don', 'can', 'won', 'isn', 'John', 'YOU',
             'WE', 'THEY', 'DON', 'It', 'y', 'o', 'rock', 'ma']
    if k == 0:
        return pick(heads) + pick(CONTRACTIONS)
    if k == 1:
        return pick(CONTRACTIONS) + pick(CONTRACTIONS)
    if k == 2:
        return "'" + pick(W['en']) + "'"
    if k == 3:
        return pick(heads).upper() + pick(CONTRACTIONS).upper() + ' ' + pick(heads) + pick(CONTRACTIONS)
    if k == 4:
        return pick(["rock 'n' roll", "'twas", "ol'", "y'all'd've", "''", "'''", "' s", "'  ll",
                     "don't", "DON'T", "Don'T", "it's", "IT'S", "we've", "WE'VE", "I'm", "I'M", "she'll", "SHE'LL",
                     "he'd", "HE'D", "they're", "THEY'RE", "'S'", "l'amour", "aujourd'hui", "dell'arte"])
    return pick(heads) + ' ' + pick(CONTRACTIONS) + pick([' ', '', '.', '!'])


PUNCT = list('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~') + ['…', '—', '–', '«', '»', '“', '”', '‘', '’',
    '¿', '¡', '·', '•', '§', '¶', '†', '‡', '※', '、', '。', '「', '」', '『', '』', '【', '】', '〈', '〉',
    '！', '？', '，', '：', '；', '（', '）', '؟', '،', '।', '॥', '¬', '¦', '°', '±', '×', '÷', '→', '⇒',
    '∀', '∑', '√', '∞', '≈', '≠', '≤', '≥', '€', '£', '¥', '₹', '₿', '¢', '©', '®', '™', '℃']


def punct_run():
    k = int_(0, 3)
    if k == 0:
        return pick(PUNCT) * int_(2, 30)
    if k == 1:
        return rep(int_(2, 12), lambda: pick(PUNCT))
    if k == 2:
        return pick(['...', '?!', '!!!', '---', '===', '***', '###', '___', '~~~', '>>>', '<<<', ':::',
                     '/*', '*/', '//', '<!--', '-->', '=>', '->', '::', '&&', '||', '!=', '==', '<=>', '…',
                     '.,;:']) * int_(1, 5)
    return '"' + pick(W['en']) + '"' + pick(PUNCT) + '(' + pick(W['en']) + ')'


# Special-token look-alikes (exact, partial, nested, glued to text) for every family here.
SPECIALS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|begin_of_text|>', '<|end_of_text|>',
    '<|eot_id|>', '<|start_header_id|>', '<|end_header_id|>', '<|reserved_special_token_0|>',
    '<|reserved_special_token_247|>', '<|fim_prefix|>', '<|fim_middle|>', '<|fim_suffix|>', '<|vision_start|>',
    '<tool_call>', '</tool_call>', '[CLS]', '[SEP]', '[MASK]', '[PAD]', '[UNK]', '<s>', '</s>', '<unk>',
    '<pad>', '<mask>', '[INST]', '[/INST]', '<<SYS>>', '<</SYS>>', '<0x41>', '<0x0A>', '▁', '▁▁', 'Ġ', 'Ċ',
    '##ing', '##', '[cls]', '<S>', '<|ENDOFTEXT|>', '<|endoftext', 'endoftext|>', '<|endoftext|', '<|im_',
    '[CLS', 'CLS]', '<s', 's>', '< s >', '<|>', '<||>', '<|<|endoftext|>|>', '[[CLS]]', '<<s>>']


def special():
    k = int_(0, 5)
    s = pick(SPECIALS)
    if k == 0:
        return s
    if k == 1:
        return pick(W['en']) + s + pick(W['en'])
    if k == 2:
        return ' ' + s + ' '
    if k == 3:
        return s + s + pick(SPECIALS)
    if k == 4:
        return '<|im_start|>' + pick(['system', 'user', 'assistant']) + '\n' + sentence() + '<|im_end|>\n'
    return (pick(['<s>[INST] ', '[CLS] ', '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n'])
            + sentence() + pick([' [/INST]', ' [SEP]', '<|eot_id|>', '</s>']))


def long_word():
    k = int_(0, 6)
    if k == 0:
        return rep(int_(101, 300), lambda: pick(list('abcdefghijklmnopqrstuvwxyz')))
    if k == 1:
        return pick(['ab', 'xyz', 'la', 'na', 'ha', 'Buffalo', 'ing']) * int_(40, 120)
    if k == 2:
        return rep(int_(30, 60), lambda: pick(W['en']))
    if k == 3:
        return ('Donaudampfschifffahrtselektrizitätenhauptbetriebswerkbauunterbeamtengesellschaft'
                + rep(int_(3, 10), lambda: pick(['kapitän', 'mützen', 'schrauben', 'verein', 'aufsicht'])))
    if k == 4:
        return rep(int_(40, 90), lambda: pick(list('0123456789abcdef')))
    if k == 5:
        return rep(int_(30, 80), lambda: pick(W[pick(['zh', 'ja', 'ko', 'th', 'hi', 'ar', 'ru'])]))
    return 'a' * int_(101, 400)


def word(script=None):
    s = script or pick(SCRIPTS)
    w = pick(W[s])
    if s == 'en' and chance(0.2):
        # All four candidates are built (drawing for the last one) before pick(), as in JS.
        w = pick([w.upper(), w.lower(), w[0].upper() + w[1:],
                  ''.join(c.upper() if chance(0.5) else c.lower() for c in w)])
    return w


# Decomposed letters, combining-mark stacks, NFC/NFKC-sensitive compatibility characters.
def combining():
    k = int_(0, 4)
    base = pick(list('aeiouAEIOUnNcCsSzZyY'))
    if k == 0:
        return base + range_(0x300, 0x36f)
    if k == 1:
        return base + rep(int_(2, 8), lambda: range_(0x300, 0x36f))  # zalgo-ish stack
    if k == 2:
        return pick(['e\u0301', 'n\u0303', 'A\u030a', 'c\u0327', 'u\u0308', 'o\u0302\u0301', '\u1100\u1161\u11a8',
                     '\u1112\u1161\u11ab', '\u212a', '\u212b', 'Ω', 'ﬁ', 'ﬃ', 'ǆ', 'ǈ', '①', 'ｱ', 'Ａｂｃ', '㍿', '㎞',
                     'ℌ', 'ℕ', '𝐀𝐁𝐂', '𝓗𝓮𝓵𝓵𝓸', 'ᾅ', 'ὒ', 'ǖ', 'ẞ', 'ß', 'İ', 'ŉ', 'ΐ', 'ﬆ', 'ﷺ', 'ﷻ',
                     '\u0915\u093c', '\u0e01\u0e33', 'ㅎㅏㄴ'])
    if k == 3:
        return word('en') + '\u0301' + word('en')
    return range_(0x41, 0x5a) + range_(0x1ab0, 0x1abd) + range_(0x20d0, 0x20dc)


# Random code points from long-assigned blocks (stable across Unicode versions).
BLOCKS = [(0x20, 0x7e), (0xa1, 0x24f), (0x370, 0x3ff), (0x400, 0x4ff), (0x531, 0x556), (0x5d0, 0x5ea),
          (0x621, 0x64a), (0x905, 0x939), (0x985, 0x9b9), (0xe01, 0xe3a), (0x10a0, 0x10c5), (0x1e00, 0x1eff),
          (0x2010, 0x2027), (0x2190, 0x21ff), (0x2200, 0x22ff), (0x2500, 0x257f), (0x25a0, 0x25ff), (0x2600, 0x26ff),
          (0x3041, 0x3094), (0x30a1, 0x30fa), (0x3131, 0x318e), (0x4e00, 0x9fa5), (0xac00, 0xd7a3), (0xff01, 0xff5e),
          (0x1f600, 0x1f64f), (0x20000, 0x2a6d6), (0xe000, 0xe0ff), (0x1d400, 0x1d4ff)]


def random_chars():
    b = pick(BLOCKS)
    return rep(int_(1, 12), lambda: range_(b[0], b[1]))


def controls():
    return pick(['\u0001', '\u0007', '\u001b[31mred\u001b[0m', '\u007f', '\u0080', '\u009f', '\ufffd', '\ufffe',
                 '\u2060', '\u200e', '\u200f', '\u202e', '\u2066', '\u061c', '\u034f', '\ufe0f', '\ufe0e', '\u0000',
                 'a\u0000b'])


def sentence():
    script = pick(SCRIPTS)
    n = int_(1, 8)
    parts = []
    for _ in range(n):
        w = word(script if chance(0.8) else None) if chance(0.85) else pick([number, emoji, contraction, combining])()
        parts.append(w)
        parts.append((pick(['', '', ' ']) if script in ('zh', 'ja') else ' ') if chance(0.9) else pick(SPACES))
    s = js_trim_end(''.join(parts))
    if chance(0.5):
        s += pick(['.', '!', '?', '。', '؟', '…', '।', '', ':'])
    return s


GENS = [
    (sentence, 30), (emoji, 4), (ws_run, 4), (number, 5), (lambda: pick(CODE), 3), (lambda: pick(URLS), 2),
    (long_word, 1), (punct_run, 4), (contraction, 5), (special, 6), (combining, 4), (random_chars, 4),
    (controls, 1),
]
TOTAL_W = sum(g[1] for g in GENS)


def piece():
    x = R() * TOTAL_W
    for g, w in GENS:
        x -= w
        if x < 0:
            return g()
    return sentence()


# One corpus entry: usually a mix of 1-4 pieces with assorted joints; edge cases at the start.
FIXED = ['', ' ', '  ', '\n', '\t', '\r\n', 'a', 'A', ' a', 'a ', ' a ', '  a  ', 'Hello world', ' Hello world',
    'Hello World', 'HELLO WORLD', 'hello\nworld', 'hello\n\nworld', 'hello \n world', '\n\n\n', '   \n  \n ',
    "I'm", "i'M", "don't", "DON'T", "it's", "It's", "'s", "'", "''", "'''", '0', '00', '000', '0000', '12345678901234567890',
    '3.14159', '1,000,000', '<s>', '</s>', '<unk>', '<|endoftext|>', '[CLS]', '[SEP]', '[UNK]', '[MASK]', '[PAD]',
    '<|begin_of_text|>', '<|eot_id|>', '<|im_start|>', '<|im_end|>', 'a<|endoftext|>b', 'a <|endoftext|> b',
    '[CLS] hello [SEP]', '<s> hello </s>', '🙂', '👍🏽', '👨‍👩‍👧‍👦', '🇺🇸🇩🇪', '你好世界', 'こんにちは世界', '안녕하세요',
    'Привет, мир!', 'مرحبا بالعالم', 'שלום עולם', 'नमस्ते दुनिया', 'สวัสดีชาวโลก', 'Γειά σου Κόσμε', 'café', 'cafe\u0301',
    'naïve résumé', 'ﬁ', '\u00c5', '\u212b', '\u00a0', '\u3000', '\u200b', '\ufeff', 'a\u00a0b', 'a\u3000b', '▁', '▁▁hello',
    'Ġhello', '##ing', '<0x0A>', 'a' * 150, '1' * 150, ' ' * 100, '\t\t\t', '.' * 50]



def make_corpus(n):
    out = list(FIXED)
    joints = [' ', ' ', ' ', '', '\n', '\n\n', '\t', '  ', ', ', '. ', ' - ', '\r\n']
    while len(out) < n:
        k = R()
        if k < 0.003:  # long document
            s = rep(int_(10, 25), lambda: piece() + pick(joints))
        else:
            s = piece()
            more = 0 if chance(0.6) else int_(1, 2)
            for _ in range(more):
                s += pick(joints) + piece()
        if chance(0.05):
            s = ' ' + s
        if chance(0.05):
            s = s + pick([' ', '\n', '  ', '\t'])
        out.append(s)
    # Guard the promise that every string is valid Unicode (no lone surrogates).
    for s in out:
        if any(0xD800 <= ord(c) <= 0xDFFF for c in s):
            raise ValueError('lone surrogate in corpus: ' + repr(s))
    return out


# ---- Unicode coverage --------------------------------------------------------------------
# Every Unicode block starts at a multiple of 16 and spans a multiple of 16 code points, so
# sampling every 16-code-point column covers every block of every Unicode version (those
# newer than a tokenizer's tables included). General categories are those of Python's
# unicodedata (Unicode 14 in the pinned Python); Cs (surrogates) cannot occur in valid
# UTF-8 and is left out. A separate PRNG keeps make_corpus() unchanged.
BLOCK_PLANES = (0, 1, 2, 3, 14)  # planes with blocks; the others are unassigned or private use
CATEGORIES = ['Lu', 'Ll', 'Lt', 'Lm', 'Lo', 'Mn', 'Mc', 'Me', 'Nd', 'Nl', 'No', 'Pc', 'Pd', 'Ps', 'Pe', 'Pi',
              'Pf', 'Po', 'Sm', 'Sc', 'Sk', 'So', 'Zs', 'Zl', 'Zp', 'Cc', 'Cf', 'Co', 'Cn']
CONTEXT_BASES = ['a', 'A', 'e', 'k', 'n', ' ', '', '1', '.', 'x']


def unicode_coverage():
    """Six strings of recent combining marks and compositions, then strings that together hold two random code points of every 16-code-point column of
    planes 0-3 and 14 (one string per 256 code points: 16 words, each a context character
    or nothing followed by the column's two code points), 16 random code points of each
    other plane, and for every general category 24 random code points of it, alone, after a
    letter, between letters and in a run."""
    import unicodedata

    r = rng(20261207)

    def below(n):
        return int(r() * n)

    def ok(c):
        return not 0xD800 <= c <= 0xDFFF

    # Marks of recent Unicode versions that HF's BertNormalizer keeps (U+089C, U+08D9, U+08DD:
    # Unicode 14; U+1AC2: 14; U+1ACE: 14) and that utf8proc's newer tables strip as accents.
    out = ['caf\u089ce', 'x\u08d9y z\u08dd', '\u1ac2', 'na\u08ddive re\u0301sume\u1ac2', 'e\u0301\u089c\u0316 A\u1ace\u0300',
           'Sogdian \U00010f30\U00010f46\U00010f47\U00010f50 Dives Akuru \U00011935\U00011930 \U00011938']
    for plane in BLOCK_PLANES:
        for row in range(plane << 16, (plane + 1) << 16, 256):
            words = []
            for col in range(row, row + 256, 16):
                cps = [c for c in (col + below(16), col + below(16)) if ok(c)]
                if cps:
                    words.append(CONTEXT_BASES[below(len(CONTEXT_BASES))] + ''.join(map(chr, cps)))
            if words:
                out.append(' '.join(words))
    for plane in range(17):
        if plane not in BLOCK_PLANES:
            out.append(''.join(chr((plane << 16) + below(0x10000)) for _ in range(16)))
    by_cat = {k: [] for k in CATEGORIES}
    for c in range(0x110000):
        k = unicodedata.category(chr(c))
        if k in by_cat:
            by_cat[k].append(c)
    for k in CATEGORIES:
        pool = by_cat[k]
        picks = [chr(pool[below(len(pool))]) for _ in range(24)]
        out.append(''.join(picks[0:4]))
        out.append(' '.join('a' + p for p in picks[4:12]))
        out.append(' '.join('b' + p + 'c' for p in picks[12:20]))
        out.append('x' + ''.join(picks[20:24]) + ' ' + ''.join(picks[20:24]).upper())
    return out
