/* tokenizer_split.c — hand-written pre-tokenizers for the Split(Regex) patterns of Llama 3 and Qwen2 byte-level
 * tokenizer.json files (pre_tokenizer Sequence[Split(Regex(PAT), Isolated), ByteLevel(use_regex=false)]):
 *
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *
 * (Qwen2: \p{N} instead of \p{N}{1,3}). Only these exact pattern strings are recognised (tokenizer_json.c); the
 * split is computed as the regex engine (Oniguruma) does it: at each position the alternatives are tried in order
 * and the first that matches wins, with the backtracking of \s*[\r\n]+ and \s+(?!\S) worked out by hand. Classes
 * (\p{L}, \p{N}, \s) are those of the GPT-2 pre-tokenizer (tokenizer_util.c); bytes that are not UTF-8 count as
 * "other" characters. */
#include "io/tokenizer_internal.h"

static int cls_at(const uint8_t *s, size_t n, size_t i, size_t *adv) {
    return moec_tok_class(moec_tok_utf8_decode(s, n, i, adv));
}

static int lower_eq(const uint8_t *s, size_t n, size_t i, char c) { return i < n && (s[i] | 0x20) == c; }

/* End of a case-insensitive contraction 's 't 're 've 'm 'll 'd at s[i] == '\'', or 0 if none. Oniguruma's case
 * folding also lets 'ſ' (U+017F LONG S, UTF-8 C5 BF) match 's'. */
static size_t contraction_end(const uint8_t *s, size_t n, size_t i) {
    size_t j = i + 1;
    if (j >= n) return 0;
    if (lower_eq(s, n, j, 's') || lower_eq(s, n, j, 't') || lower_eq(s, n, j, 'm') || lower_eq(s, n, j, 'd'))
        return j + 1;
    if (s[j] == 0xC5 && j + 1 < n && s[j + 1] == 0xBF) return j + 2;
    if ((lower_eq(s, n, j, 'r') || lower_eq(s, n, j, 'v')) && lower_eq(s, n, j + 1, 'e')) return j + 2;
    if (lower_eq(s, n, j, 'l') && lower_eq(s, n, j + 1, 'l')) return j + 2;
    return 0;
}

size_t moec_tok_pretoken_end_split(int kind, const uint8_t *s, size_t n, size_t i) {
    size_t adv, adv2, j;
    /* 1. contractions */
    if (s[i] == '\'') {
        size_t e = contraction_end(s, n, i);
        if (e) return e;
    }
    int c0 = cls_at(s, n, i, &adv);
    int nl0 = s[i] == '\r' || s[i] == '\n';
    /* 2. [^\r\n\p{L}\p{N}]?\p{L}+ */
    j = 0;
    if (c0 == MOEC_TOK_LETTER) j = i;
    else if (!nl0 && c0 != MOEC_TOK_NUMBER && i + adv < n && cls_at(s, n, i + adv, &adv2) == MOEC_TOK_LETTER) j = i + adv;
    if (c0 == MOEC_TOK_LETTER || j) {
        while (j < n && cls_at(s, n, j, &adv2) == MOEC_TOK_LETTER) j += adv2;
        return j;
    }
    /* 3. \p{N}{1,3} (Llama 3) or \p{N} (Qwen2) */
    if (c0 == MOEC_TOK_NUMBER) {
        int max = kind == MOEC_TOK_PRETOK_LLAMA3 ? 3 : 1, k = 1;
        j = i + adv;
        while (k < max && j < n && cls_at(s, n, j, &adv2) == MOEC_TOK_NUMBER) { j += adv2; k++; }
        return j;
    }
    /* 4.  ?[^\s\p{L}\p{N}]+[\r\n]* */
    size_t k = (s[i] == ' ' && i + 1 < n) ? i + 1 : i;
    if (cls_at(s, n, k, &adv2) == MOEC_TOK_OTHER) {
        j = k + adv2;
        while (j < n && cls_at(s, n, j, &adv2) == MOEC_TOK_OTHER) j += adv2;
        while (j < n && (s[j] == '\r' || s[j] == '\n')) j++;
        return j;
    }
    /* Here s[i] is whitespace (every other class matched above). */
    size_t last = i, last_nl = SIZE_MAX;
    for (j = i; j < n && cls_at(s, n, j, &adv2) == MOEC_TOK_SPACE; j += adv2) {
        last = j;
        if (s[j] == '\r' || s[j] == '\n') last_nl = j;
    }
    /* 5. \s*[\r\n]+ : \s* gives characters back until the last newline of the run */
    if (last_nl != SIZE_MAX) return last_nl + 1;
    /* 6. \s+(?!\S) leaves the run's last character when a non-space follows; 7. \s+ otherwise */
    if (j == n || last == i) return j;
    return last;
}

const char *const moec_tok_split_pattern[3] = {
    NULL,
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};
