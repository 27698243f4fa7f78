/* stop.c — streaming stop-string matcher; the rules are in stop.h. */
#include "infer/stop.h"

#include <stdlib.h>
#include <string.h>

moec_status moec_stop_init(moec_stop *m, const char *const *stops, int n) {
    memset(m, 0, sizeof *m);
    if (n < 0 || n > MOEC_STOP_MAX)
        return MOEC_ERR(MOEC_ERR_ARG, "stop strings: %d given, at most %d allowed", n, MOEC_STOP_MAX);
    for (int i = 0; i < n; i++) {
        if (!stops[i] || !stops[i][0]) {
            moec_stop_free(m);
            return MOEC_ERR(MOEC_ERR_ARG, "stop strings: string %d is empty", i);
        }
        m->stop_len[i] = strlen(stops[i]);
        m->stops[i] = malloc(m->stop_len[i] + 1);
        if (!m->stops[i]) {
            moec_stop_free(m);
            return MOEC_ERR(MOEC_ERR_NOMEM, "stop strings: out of memory");
        }
        memcpy(m->stops[i], stops[i], m->stop_len[i] + 1);
        m->n_stops = i + 1;
    }
    return MOEC_OK;
}

void moec_stop_free(moec_stop *m) {
    for (int i = 0; i < m->n_stops; i++) free(m->stops[i]);
    free(m->buf);
    memset(m, 0, sizeof *m);
}

/* Forget what the previous call emitted: the held-back bytes move to the front. */
static void drop_emitted(moec_stop *m) {
    if (m->emitted == 0) return;
    memmove(m->buf, m->buf + m->emitted, m->len - m->emitted);
    m->len -= m->emitted;
    m->emitted = 0;
}

/* The largest e' <= e such that b[0..e') does not end inside an unfinished UTF-8 character: if the last lead
 * byte before e announces more continuation bytes than there are before e, cut before that lead byte. */
static size_t utf8_whole_end(const unsigned char *b, size_t e) {
    size_t i = e;
    while (i > 0 && e - i < 3 && (b[i - 1] & 0xC0) == 0x80) i--; /* back over at most 3 continuation bytes */
    if (i == 0) return e;
    unsigned char lead = b[i - 1];
    size_t need = lead >= 0xF0 && lead <= 0xF4 ? 4 : lead >= 0xE0 && lead <= 0xEF ? 3 : lead >= 0xC2 && lead <= 0xDF ? 2 : 1;
    return e - (i - 1) < need ? i - 1 : e;
}

moec_status moec_stop_feed(moec_stop *m, const char *bytes, size_t n, const char **emit, size_t *emit_len,
                           int *stopped) {
    *emit = m->buf;
    *emit_len = 0;
    *stopped = m->stopped;
    if (m->stopped) return MOEC_OK;
    drop_emitted(m);
    if (m->len + n > m->cap || !m->buf) {
        size_t cap = m->cap ? m->cap : 64;
        while (cap < m->len + n) cap *= 2;
        char *nb = realloc(m->buf, cap);
        if (!nb) return MOEC_ERR(MOEC_ERR_NOMEM, "stop strings: cannot hold %zu bytes", m->len + n);
        m->buf = nb;
        m->cap = cap;
    }
    if (n) memcpy(m->buf + m->len, bytes, n);
    m->len += n;
    *emit = m->buf;

    /* A completed stop string: the held bytes had none, so any occurrence ends in the new bytes. The first to
     * end wins; among those ending together, the longest (earliest start). */
    size_t best_end = (size_t)-1, best_start = 0;
    for (int i = 0; i < m->n_stops; i++) {
        const char *hit = memmem(m->buf, m->len, m->stops[i], m->stop_len[i]);
        if (!hit) continue;
        size_t start = (size_t)(hit - m->buf), end = start + m->stop_len[i];
        if (end < best_end || (end == best_end && start < best_start)) {
            best_end = end;
            best_start = start;
        }
    }
    if (best_end != (size_t)-1) {
        m->stopped = *stopped = 1;
        m->emitted = *emit_len = best_start;
        return MOEC_OK;
    }

    /* Hold back the longest suffix that is a proper prefix of some stop string. */
    size_t hold = 0;
    for (int i = 0; i < m->n_stops; i++) {
        size_t k = m->stop_len[i] - 1 < m->len ? m->stop_len[i] - 1 : m->len;
        for (; k > hold; k--)
            if (memcmp(m->buf + m->len - k, m->stops[i], k) == 0) {
                hold = k;
                break;
            }
    }
    m->emitted = *emit_len = utf8_whole_end((const unsigned char *)m->buf, m->len - hold);
    return MOEC_OK;
}

void moec_stop_flush(moec_stop *m, const char **emit, size_t *emit_len) {
    *emit = m->buf ? m->buf : ""; /* never NULL, even before any feed */
    *emit_len = 0;
    if (m->stopped || !m->buf) return;
    drop_emitted(m);
    m->emitted = *emit_len = m->len;
}
