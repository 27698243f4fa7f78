/* test_stop.c — the streaming stop-string matcher (src/infer/stop.h).
 *
 * Hand cases: a stop inside one token, across 2 and 3 tokens, a false partial match released, overlapping
 * candidates, two stop strings where the shorter completes first, UTF-8 split across tokens, no stop strings,
 * invalid UTF-8 passed through, text after the stop never emitted, bad arguments. Then 20,000 random cases
 * (random texts of ASCII, 2-, 3- and 4-byte characters; random stop strings, often taken from the text; random
 * cuts at any byte) against the whole-text oracle: the output is the text up to the stop occurrence that ends
 * first (longest of those ending there), or all of it; and after every feed exactly the bytes before the
 * longest suffix that begins a stop string, rounded down to a character boundary, have been emitted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/rng.h"
#include "infer/stop.h"

static int n_pass, n_fail;

static void check(int ok, const char *what) {
    printf("%s: %s\n", ok ? "PASS" : "FAIL", what);
    if (ok) n_pass++; else n_fail++;
}

/* Feed NUL-terminated tokens; the emitted pieces are joined with '|' into out (so per-feed emission is visible),
 * flush appended after a final '|'. Returns the stopped flag, -1 on error. */
static int run(const char *const *stops, int n_stops, const char *const *tokens, int n_tokens, char *out) {
    moec_stop m;
    out[0] = '\0';
    if (moec_stop_init(&m, stops, n_stops) != MOEC_OK) return -1;
    int stopped = 0;
    for (int i = 0; i < n_tokens; i++) {
        const char *e;
        size_t n;
        if (moec_stop_feed(&m, tokens[i], strlen(tokens[i]), &e, &n, &stopped) != MOEC_OK) { stopped = -1; break; }
        strncat(out, e, n);
        strcat(out, "|");
    }
    const char *e;
    size_t n;
    moec_stop_flush(&m, &e, &n);
    strncat(out, e, n);
    moec_stop_free(&m);
    return stopped;
}

static void hand_case(const char *what, const char *const *stops, int n_stops, const char *const *tokens,
                      int n_tokens, const char *want, int want_stopped) {
    char out[1024];
    int stopped = run(stops, n_stops, tokens, n_tokens, out);
    int ok = stopped == want_stopped && strcmp(out, want) == 0;
    if (!ok) printf("  got '%s' stopped %d; want '%s' stopped %d\n", out, stopped, want, want_stopped);
    check(ok, what);
}

static void hand_cases(void) {
    const char *s_end[] = {"END"}, *s_tag[] = {"<stop>"};
    hand_case("stop inside one token; text after it in the token not emitted", s_end, 1,
              (const char *[]){"Hello", " worldEND more", "ignored"}, 3, "Hello| world||", 1);
    hand_case("stop across 2 tokens", s_tag, 1, (const char *[]){"abc<st", "op>def"}, 2, "abc||", 1);
    hand_case("stop across 3 tokens", s_tag, 1, (const char *[]){"x<s", "to", "p>y"}, 3, "x|||", 1);
    hand_case("false partial match held, then released", s_tag, 1,
              (const char *[]){"a<st", "ory", " ends <", "s"}, 4, "a|<story| ends ||<s", 0);
    hand_case("overlapping candidates: 'aab' with stop 'ab' emits 'a'", (const char *[]){"ab"}, 1,
              (const char *[]){"a", "a", "b"}, 3, "|a||", 1);
    hand_case("'aab' in one token with stop 'ab'", (const char *[]){"ab"}, 1, (const char *[]){"aab"}, 1, "a|", 1);
    hand_case("stops 'abcd' and 'bc': 'bc' completes first -> 'a'", (const char *[]){"abcd", "bc"}, 2,
              (const char *[]){"ab", "cd"}, 2, "|a|", 1);
    hand_case("stops 'hello world' and 'lo' in one token -> 'hel'", (const char *[]){"hello world", "lo"}, 2,
              (const char *[]){"hello world"}, 1, "hel|", 1);
    hand_case("stops 'c' and 'abc' ending together: the longer one cuts", (const char *[]){"c", "abc"}, 2,
              (const char *[]){"xa", "bc"}, 2, "x||", 1);
    hand_case("stops 'world' and 'ld!': 'world' ends first", (const char *[]){"ld!", "world"}, 2,
              (const char *[]){"hello wor", "ld!"}, 2, "hello ||", 1);
    hand_case("UTF-8 split across tokens held until whole (2-, 3- and 4-byte characters)", NULL, 0,
              (const char *[]){"caf", "\xc3", "\xa9 ok ", "\xe2\x82", "\xac", "\xf0", "\x9f\x98", "\x80!"}, 8,
              "caf||\xc3\xa9 ok ||\xe2\x82\xac|||\xf0\x9f\x98\x80!|", 0);
    hand_case("UTF-8 hold and a stop string together", (const char *[]){"\xc3\xa9!"}, 1,
              (const char *[]){"caf\xc3", "\xa9", "?\xc3", "\xa9", "!x"}, 5, "caf||\xc3\xa9?|||", 1);
    hand_case("empty stop list: everything passes", NULL, 0, (const char *[]){"one ", "two"}, 2, "one |two|", 0);
    hand_case("invalid UTF-8 is not held: stray continuation, lead then ASCII, 0xFF", NULL, 0,
              (const char *[]){"\x80" "a", "\xc3", "A\xff"}, 3, "\x80" "a||\xc3" "A\xff|", 0);
    hand_case("unfinished character at the end is flushed", NULL, 0, (const char *[]){"ab\xe2\x82"}, 1,
              "ab|\xe2\x82", 0);
    hand_case("after the stop nothing more is emitted, flush included", s_end, 1,
              (const char *[]){"xEN", "D", "more", "END"}, 4, "x||||", 1);

    moec_stop m;
    const char *many[MOEC_STOP_MAX + 1], *with_empty[] = {"a", ""};
    for (int i = 0; i <= MOEC_STOP_MAX; i++) many[i] = "x";
    int ok = moec_stop_init(&m, many, MOEC_STOP_MAX + 1) == MOEC_ERR_ARG;
    printf("  %s\n", moec_error_message());
    ok &= moec_stop_init(&m, with_empty, 2) == MOEC_ERR_ARG;
    printf("  %s\n", moec_error_message());
    ok &= moec_stop_init(&m, many, MOEC_STOP_MAX) == MOEC_OK;
    moec_stop_free(&m);
    check(ok, "more than MOEC_STOP_MAX stop strings, or an empty one, refused");
}

/* ---------------------------------------------------------------- randomized, against the whole-text oracle */

static const char *const PIECES[] = {"a", "b", "c", " ", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};

static size_t random_text(uint64_t *r, char *dst, int max_pieces) {
    int n = (int)(moec_rand_u64(r) % (uint64_t)(max_pieces + 1));
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        const char *p = PIECES[moec_rand_u64(r) % 7];
        memcpy(dst + len, p, strlen(p));
        len += strlen(p);
    }
    dst[len] = '\0';
    return len;
}

static int is_boundary(const char *t, size_t len, size_t i) {
    return i == 0 || i >= len || ((unsigned char)t[i] & 0xC0) != 0x80;
}

/* Where to cut: scan end positions left to right; the first at which some stop string ends, cut before the
 * longest of those ending there. */
static size_t oracle_cut(const char *t, size_t len, char stops[][64], int n, int *found) {
    for (size_t e = 1; e <= len; e++) {
        size_t longest = 0;
        for (int i = 0; i < n; i++) {
            size_t L = strlen(stops[i]);
            if (L <= e && L > longest && memcmp(t + e - L, stops[i], L) == 0) longest = L;
        }
        if (longest) { *found = 1; return e - longest; }
    }
    *found = 0;
    return len;
}

/* What must have been emitted after receiving t[0..r) (no stop yet): everything before the longest suffix that
 * is a proper prefix of a stop string, rounded down to a character boundary of t. */
static size_t oracle_emitted(const char *t, size_t len, size_t r, char stops[][64], int n) {
    size_t hold = 0;
    for (int i = 0; i < n; i++)
        for (size_t k = 1; k < strlen(stops[i]) && k <= r; k++)
            if (memcmp(t + r - k, stops[i], k) == 0 && k > hold) hold = k;
    size_t e = r - hold;
    while (!is_boundary(t, len, e)) e--;
    return e;
}

static void random_cases(void) {
    uint64_t r = 2024;
    int n_cases = 20000, bad = 0, n_stopped = 0, n_mid_char_cuts = 0;
    char text[512], stops[4][64], out[512];
    for (int c = 0; c < n_cases; c++) {
        size_t len = random_text(&r, text, 40);
        int n_stops = (int)(moec_rand_u64(&r) % 4);
        const char *sp[4];
        for (int i = 0; i < n_stops; i++) {
            if (len > 0 && moec_rand_u64(&r) % 2) { /* a piece of the text, on character boundaries */
                size_t a = moec_rand_u64(&r) % len, b;
                while (!is_boundary(text, len, a)) a--;
                b = a + 1 + moec_rand_u64(&r) % 8;
                if (b > len) b = len;
                while (!is_boundary(text, len, b)) b++;
                memcpy(stops[i], text + a, b - a);
                stops[i][b - a] = '\0';
            } else {
                while (random_text(&r, stops[i], 3) == 0) {}
            }
            sp[i] = stops[i];
        }
        int found;
        size_t cut = oracle_cut(text, len, stops, n_stops, &found);
        moec_stop m;
        int ok = moec_stop_init(&m, sp, n_stops) == MOEC_OK, stopped = 0;
        size_t pos = 0, out_len = 0;
        while (ok && pos < len) {
            size_t n = 1 + moec_rand_u64(&r) % 7, n_emit;
            if (n > len - pos) n = len - pos;
            n_mid_char_cuts += !is_boundary(text, len, pos + n);
            const char *e;
            ok = moec_stop_feed(&m, text + pos, n, &e, &n_emit, &stopped) == MOEC_OK;
            pos += n;
            memcpy(out + out_len, e, n_emit);
            out_len += n_emit;
            if (stopped) break;
            ok &= out_len == oracle_emitted(text, len, pos, stops, n_stops);
        }
        const char *e;
        size_t n_emit;
        moec_stop_flush(&m, &e, &n_emit);
        memcpy(out + out_len, e, n_emit);
        out_len += n_emit;
        moec_stop_free(&m);
        ok = ok && stopped == found && out_len == cut && memcmp(out, text, cut) == 0;
        n_stopped += stopped;
        if (!ok && ++bad <= 3) {
            printf("  case %d: text '%s', %d stops:", c, text, n_stops);
            for (int i = 0; i < n_stops; i++) printf(" '%s'", stops[i]);
            printf("; got %zu bytes stopped %d, want %zu stopped %d\n", out_len, stopped, cut, found);
        }
    }
    printf("  %d cases (%d stopped, %d tokens ending inside a character), %d wrong\n", n_cases, n_stopped,
           n_mid_char_cuts, bad);
    check(bad == 0, "random texts, stops and token cuts: output and per-feed emission equal the oracle");
}

int main(void) {
    hand_cases();
    random_cases();
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
