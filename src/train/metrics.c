/* metrics.c — progress line, metrics.jsonl writer, JSON record builder. See metrics.h. */
#include "train/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* ---------- progress line ---------- */

#define PROGRESS_BAR 30
#define PROGRESS_TTY_PERIOD 0.1   /* s between redraws on a terminal */
#define PROGRESS_LOG_PERIOD 10.0  /* s between plain lines when the % mark has not been reached */
#define PROGRESS_LOG_MARKS 10     /* plain lines at every 1/10 of total */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fmt_duration(char *buf, size_t cap, double s) {
    if (!(s >= 0) || s > 1e8) { snprintf(buf, cap, "?"); return; }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, cap, "%ld:%02ld", t / 60, t % 60);
}

/* Appends to buf at *len, never past cap-1; the line is simply cut if the terminal is narrow. */
static void appendf(char *buf, size_t cap, size_t *len, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void appendf(char *buf, size_t cap, size_t *len, const char *fmt, ...) {
    if (*len + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n > 0) *len += (size_t)n < cap - *len ? (size_t)n : cap - *len - 1;
}

static void progress_line(const moec_progress *p, int64_t done, double now, const char *suffix, int final,
                          char *buf, size_t cap) {
    size_t len = 0;
    double el = now - p->t_start, rel = now - p->t0;
    /* items/s since the first update; 0 (not shown) until 0.2 s have passed */
    double rate = p->started && rel >= 0.2 && done > p->done0 ? (double)(done - p->done0) / rel : 0;
    appendf(buf, cap, &len, "%s ", p->label);
    if (p->total > 0) {
        double frac = (double)done / (double)p->total;
        frac = frac < 0 ? 0 : frac > 1 ? 1 : frac;
        int fill = (int)(frac * PROGRESS_BAR);
        char bar[PROGRESS_BAR + 1];
        for (int i = 0; i < PROGRESS_BAR; i++) bar[i] = i < fill ? '#' : '.';
        bar[PROGRESS_BAR] = 0;
        appendf(buf, cap, &len, "[%s] %3d%% %" PRId64 "/%" PRId64, bar, (int)(frac * 100), done, p->total);
    } else {
        appendf(buf, cap, &len, "%" PRId64, done);
    }
    if (rate >= 1) appendf(buf, cap, &len, " %.1f it/s", rate);
    else if (rate > 0) appendf(buf, cap, &len, " %.2f s/it", 1 / rate);
    char t[32];
    if (final) {
        fmt_duration(t, sizeof t, el);
        appendf(buf, cap, &len, " in %s", t);
    } else if (p->total > 0 && rate > 0 && done < p->total) {
        fmt_duration(t, sizeof t, (double)(p->total - done) / rate);
        appendf(buf, cap, &len, " eta %s", t);
    }
    if (suffix && *suffix) appendf(buf, cap, &len, " | %s", suffix);
}

static int term_cols(FILE *f) {
    struct winsize ws;
    if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10) return ws.ws_col;
    return 120;
}

static void progress_emit(moec_progress *p, int64_t done, double now, const char *suffix, int final) {
    char line[512];
    progress_line(p, done, now, suffix, final, line, sizeof line);
    if (p->tty) {
        /* Keep the line shorter than the terminal: a wrapped line cannot be redrawn with '\r'. */
        size_t cols = (size_t)term_cols(p->out) - 1;
        if (strlen(line) > cols) line[cols] = 0;
        fprintf(p->out, "\r%s\033[K%s", line, final ? "\n" : "");
        p->drawn = !final;
    } else {
        fprintf(p->out, "%s\n", line);
    }
    fflush(p->out);
    p->t_last = now;
    p->done_last = done;
}

void moec_progress_begin(moec_progress *p, const char *label, int64_t total, FILE *out) {
    memset(p, 0, sizeof *p);
    p->out = out ? out : stderr;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    p->total = total;
    p->tty = isatty(fileno(p->out));
    p->t_start = p->t_last = now_s();
    p->done_last = -1;
    p->next_mark = total > 0 ? (total + PROGRESS_LOG_MARKS - 1) / PROGRESS_LOG_MARKS : INT64_MAX;
}

void moec_progress_update(moec_progress *p, int64_t done, const char *suffix) {
    double now = now_s();
    p->done = done;
    if (!p->started) {
        p->started = 1;
        p->done0 = done;
        p->t0 = now;
    }
    snprintf(p->suffix, sizeof p->suffix, "%s", suffix ? suffix : "");
    if (p->tty) {
        if (now - p->t_last < PROGRESS_TTY_PERIOD && p->drawn && !(p->total > 0 && done >= p->total)) return;
        progress_emit(p, done, now, suffix, 0);
        return;
    }
    int mark = p->total > 0 && done >= p->next_mark;
    if (!mark && now - p->t_last < PROGRESS_LOG_PERIOD) return;
    if (p->total > 0)
        while (p->next_mark <= done) p->next_mark += (p->total + PROGRESS_LOG_MARKS - 1) / PROGRESS_LOG_MARKS;
    progress_emit(p, done, now, suffix, 0);
}

void moec_progress_end(moec_progress *p) {
    progress_emit(p, p->done, now_s(), p->suffix, 1);
}

/* ---------- metrics.jsonl ---------- */

struct moec_metrics {
    FILE *f;
    char *path;
};

moec_status moec_metrics_open(moec_metrics **m, const char *path, int append) {
    if (!m || !path) return MOEC_ERR(MOEC_ERR_ARG, "metrics: NULL argument");
    *m = NULL;
    moec_metrics *x = calloc(1, sizeof *x);
    if (x) x->path = strdup(path);
    if (!x || !x->path) {
        if (x) free(x);
        return MOEC_ERR(MOEC_ERR_NOMEM, "metrics: out of memory");
    }
    x->f = fopen(path, append ? "a" : "w");
    if (!x->f) {
        moec_status s = MOEC_ERR(MOEC_ERR_IO, "metrics: cannot open %s for %s: %s", path,
                                 append ? "appending" : "writing", strerror(errno));
        free(x->path);
        free(x);
        return s;
    }
    *m = x;
    return MOEC_OK;
}

moec_status moec_metrics_write(moec_metrics *m, const char *json_line) {
    if (!m || !json_line) return MOEC_ERR(MOEC_ERR_ARG, "metrics: NULL argument");
    if (strchr(json_line, '\n'))
        return MOEC_ERR(MOEC_ERR_ARG, "metrics: record for %s contains a newline (one record per line)", m->path);
    if (fputs(json_line, m->f) == EOF || fputc('\n', m->f) == EOF || fflush(m->f) != 0)
        return MOEC_ERR(MOEC_ERR_IO, "metrics: write to %s failed: %s", m->path, strerror(errno));
    return MOEC_OK;
}

moec_status moec_metrics_close(moec_metrics *m) {
    if (!m) return MOEC_OK;
    moec_status s = MOEC_OK;
    if (fclose(m->f) != 0) s = MOEC_ERR(MOEC_ERR_IO, "metrics: closing %s failed: %s", m->path, strerror(errno));
    free(m->path);
    free(m);
    return s;
}

/* ---------- JSON record builder ---------- */

static int jb_reserve(moec_jsonbuf *b, size_t extra) {
    if (b->failed) return 0;
    if (b->len + extra + 1 <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) { b->failed = 1; return 0; }
    b->data = d;
    b->cap = cap;
    return 1;
}

static void jb_put(moec_jsonbuf *b, const char *s, size_t n) {
    if (!jb_reserve(b, n)) return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

static void jb_putc(moec_jsonbuf *b, char c) { jb_put(b, &c, 1); }

static void jb_string(moec_jsonbuf *b, const char *s) {
    jb_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        switch (*p) {
        case '"': jb_put(b, "\\\"", 2); break;
        case '\\': jb_put(b, "\\\\", 2); break;
        case '\n': jb_put(b, "\\n", 2); break;
        case '\r': jb_put(b, "\\r", 2); break;
        case '\t': jb_put(b, "\\t", 2); break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                jb_put(b, esc, 6);
            } else {
                jb_putc(b, (char)*p); /* UTF-8 passes through unchanged */
            }
        }
    }
    jb_putc(b, '"');
}

static void jb_double(moec_jsonbuf *b, double v) {
    if (!isfinite(v)) { jb_put(b, "null", 4); return; }
    char tmp[32];
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) { /* shortest of %.15g..%.17g that round-trips */
        n = snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) break;
    }
    jb_put(b, tmp, (size_t)n);
}

static void jb_int(moec_jsonbuf *b, int64_t v) {
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%" PRId64, v);
    jb_put(b, tmp, (size_t)n);
}

static void jb_key(moec_jsonbuf *b, const char *name) {
    if (b->fields++ > 0) jb_putc(b, ',');
    jb_string(b, name ? name : "");
    jb_putc(b, ':');
}

void moec_jsonl_begin(moec_jsonbuf *b) {
    b->len = 0;
    b->fields = 0;
    b->failed = 0;
    jb_putc(b, '{');
}

void moec_jsonl_int(moec_jsonbuf *b, const char *name, int64_t v) { jb_key(b, name); jb_int(b, v); }
void moec_jsonl_num(moec_jsonbuf *b, const char *name, double v) { jb_key(b, name); jb_double(b, v); }

void moec_jsonl_str(moec_jsonbuf *b, const char *name, const char *v) {
    jb_key(b, name);
    if (v) jb_string(b, v);
    else jb_put(b, "null", 4);
}

static void jb_num_row(moec_jsonbuf *b, const double *v, size_t n) {
    jb_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i) jb_putc(b, ',');
        jb_double(b, v[i]);
    }
    jb_putc(b, ']');
}

void moec_jsonl_num_list(moec_jsonbuf *b, const char *name, const double *v, size_t n) {
    jb_key(b, name);
    jb_num_row(b, v, n);
}

void moec_jsonl_int_list(moec_jsonbuf *b, const char *name, const int64_t *v, size_t n) {
    jb_key(b, name);
    jb_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i) jb_putc(b, ',');
        jb_int(b, v[i]);
    }
    jb_putc(b, ']');
}

void moec_jsonl_num_matrix(moec_jsonbuf *b, const char *name, const double *v, size_t rows, size_t cols) {
    jb_key(b, name);
    jb_putc(b, '[');
    for (size_t r = 0; r < rows; r++) {
        if (r) jb_putc(b, ',');
        jb_num_row(b, v + r * cols, cols);
    }
    jb_putc(b, ']');
}

moec_status moec_jsonl_end(moec_jsonbuf *b) {
    jb_putc(b, '}');
    if (b->failed) return MOEC_ERR(MOEC_ERR_NOMEM, "metrics: out of memory building a JSON record");
    return MOEC_OK;
}

void moec_jsonbuf_free(moec_jsonbuf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}
