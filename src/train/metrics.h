/* metrics.h — the numbers a user watches during training: a terminal progress line, and metrics.jsonl.
 *
 * Progress: on a terminal one line redrawn in place (at most ~10 times a second),
 *     label [############..................]  45% 450/1000 12.3 it/s eta 0:42 | loss 3.21
 * and, when the output is a file or pipe (a batch job's log), plain lines instead, one per 10% of progress or
 * every 10 s, never a carriage return. Progress output is best-effort: write errors are ignored.
 *
 * metrics.jsonl: one JSON object per line, each line flushed as soon as it is written so `tail -f` and
 * `moec plot` see it while training runs. Records are built with moec_jsonbuf, which reuses one heap buffer
 * across records (no allocation per record once it has grown to the largest record):
 *
 *     moec_jsonbuf jb = {0};
 *     moec_jsonl_begin(&jb);
 *     moec_jsonl_int(&jb, "step", step);
 *     moec_jsonl_num(&jb, "loss", loss);                 // NaN/Inf are written as null
 *     moec_jsonl_num_matrix(&jb, "expert_load", load, L, E);
 *     MOEC_TRY(moec_jsonl_end(&jb));                     // jb.data is now one line, no '\n'
 *     MOEC_TRY(moec_metrics_write(m, jb.data));
 *     ...
 *     moec_jsonbuf_free(&jb);
 *
 * Numbers are written with the fewest digits (up to 17) that read back to the same double.
 */
#ifndef MOEC_TRAIN_METRICS_H
#define MOEC_TRAIN_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "core/error.h"

/* ---------- progress line ---------- */

typedef struct {
    FILE *out;          /* stderr if NULL was passed to begin */
    char label[48];
    int64_t total;      /* <= 0: unknown (no bar, percentage or eta) */
    int tty;            /* 1: redraw in place with '\r'. Set by begin from isatty(); a test may override it. */
    double t_start;     /* CLOCK_MONOTONIC seconds */
    double t_last;      /* last time a line was drawn/printed */
    int64_t done;       /* latest value passed to update */
    int64_t done0;      /* done at the first update, and its time: the rate is measured from there, so a */
    double t0;          /* resumed run (first update at step 5000) or a slow first step does not skew it */
    int started;
    char suffix[128];   /* latest suffix passed to update (repeated on the final line) */
    int64_t done_last;  /* done at the last line drawn/printed */
    int64_t next_mark;  /* non-TTY: print when done reaches this (every 10% of total) */
    int drawn;          /* TTY: a line is on screen and must be finished with '\n' by end */
} moec_progress;

void moec_progress_begin(moec_progress *p, const char *label, int64_t total, FILE *out);
/* done: items completed so far; suffix: optional text after " | " (e.g. "loss 3.21"), may be NULL. */
void moec_progress_update(moec_progress *p, int64_t done, const char *suffix);
/* Draws the final state (with total elapsed time) and ends the line. */
void moec_progress_end(moec_progress *p);

/* ---------- metrics.jsonl ---------- */

typedef struct moec_metrics moec_metrics;

/* append = 0 truncates path; 1 adds to an existing file (resuming a run). */
moec_status moec_metrics_open(moec_metrics **m, const char *path, int append);
/* Writes json_line followed by '\n' and flushes. The line must not contain '\n'. */
moec_status moec_metrics_write(moec_metrics *m, const char *json_line);
/* Closes and frees m (NULL is allowed); reports a failure of the final flush/close. */
moec_status moec_metrics_close(moec_metrics *m);

/* ---------- one-line JSON record builder ---------- */

typedef struct {
    char *data;   /* NUL-terminated record after moec_jsonl_end */
    size_t len, cap;
    int fields;   /* fields written in the current record (for commas) */
    int failed;   /* sticky: an allocation failed; reported by moec_jsonl_end */
} moec_jsonbuf;

void moec_jsonl_begin(moec_jsonbuf *b); /* starts a record "{"; keeps the buffer's capacity */
void moec_jsonl_int(moec_jsonbuf *b, const char *name, int64_t v);
void moec_jsonl_num(moec_jsonbuf *b, const char *name, double v);             /* non-finite -> null */
void moec_jsonl_str(moec_jsonbuf *b, const char *name, const char *v);        /* escaped; NULL -> null */
void moec_jsonl_num_list(moec_jsonbuf *b, const char *name, const double *v, size_t n);
void moec_jsonl_int_list(moec_jsonbuf *b, const char *name, const int64_t *v, size_t n);
/* v is [rows][cols] row-major; written as a list of rows. */
void moec_jsonl_num_matrix(moec_jsonbuf *b, const char *name, const double *v, size_t rows, size_t cols);
/* Closes the record "}". MOEC_ERR_NOMEM if any append failed. */
moec_status moec_jsonl_end(moec_jsonbuf *b);
void moec_jsonbuf_free(moec_jsonbuf *b);

#endif
