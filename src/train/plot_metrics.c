/* plot_metrics.c — `moec plot`: reads a run's metrics.jsonl and draws its charts with the canvas of plot.h. */
#include "train/plot.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fsutil.h"
#include <sys/stat.h>

/* ---------- moec plot: reading metrics.jsonl ---------- */

typedef struct {
    double *x, *y;
    size_t n, cap;
} series;

typedef struct {
    series loss, val_loss, lr;
    series *drop, *aux; /* [n_drop], [n_aux]: one series per MoE layer */
    int n_drop, n_aux;
    /* expert_load: shape from the first record; average over records with step >= load_cutoff */
    int load_rows, load_cols, n_load_records;
    double load_step_min, load_step_max, load_cutoff;
    double *load_sum;   /* [load_rows][load_cols] */
    int n_load_avg;
} metrics_data;

static int series_push(series *s, double x, double y) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        double *nx = realloc(s->x, cap * sizeof *nx);
        if (!nx) return 0;
        s->x = nx;
        double *ny = realloc(s->y, cap * sizeof *ny);
        if (!ny) return 0;
        s->y = ny;
        s->cap = cap;
    }
    s->x[s->n] = x;
    s->y[s->n] = y;
    s->n++;
    return 1;
}

static void series_free(series *s) {
    free(s->x);
    free(s->y);
}

static void data_free(metrics_data *d) {
    series_free(&d->loss);
    series_free(&d->val_loss);
    series_free(&d->lr);
    for (int i = 0; i < d->n_drop; i++) series_free(&d->drop[i]);
    for (int i = 0; i < d->n_aux; i++) series_free(&d->aux[i]);
    free(d->drop);
    free(d->aux);
    free(d->load_sum);
}

typedef struct {
    const char *path;
    long line;
} src_pos;

/* Optional number field: 1 and *v set if present and finite; 0 if absent or null; an error if another type. */
static moec_status get_num(const cJSON *o, const char *name, const src_pos *at, int *found, double *v) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
    *found = 0;
    if (!it || cJSON_IsNull(it)) return MOEC_OK;
    if (!cJSON_IsNumber(it))
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s:%ld: field '%s' must be a number", at->path, at->line, name);
    if (isfinite(it->valuedouble)) {
        *found = 1;
        *v = it->valuedouble;
    }
    return MOEC_OK;
}

static moec_status push(series *s, double x, double y) {
    return series_push(s, x, y) ? MOEC_OK : MOEC_ERR(MOEC_ERR_NOMEM, "plot: out of memory reading metrics");
}

/* Per-layer list field (a bare number counts as a one-layer list): point (step, v[i]) appended to (*ser)[i]. */
static moec_status get_layer_list(const cJSON *o, const char *name, const src_pos *at, double step, series **ser,
                                  int *n_ser) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!it || cJSON_IsNull(it)) return MOEC_OK;
    int n = cJSON_IsNumber(it) ? 1 : cJSON_IsArray(it) ? cJSON_GetArraySize(it) : -1;
    if (n < 0)
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s:%ld: field '%s' must be a list of numbers (one per MoE layer)",
                        at->path, at->line, name);
    if (n > 4096)
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s:%ld: field '%s' has %d entries (more than 4096 MoE layers)", at->path,
                        at->line, name, n);
    if (n > *n_ser) {
        series *ns = realloc(*ser, (size_t)n * sizeof *ns);
        if (!ns) return MOEC_ERR(MOEC_ERR_NOMEM, "plot: out of memory reading metrics");
        memset(ns + *n_ser, 0, (size_t)(n - *n_ser) * sizeof *ns);
        *ser = ns;
        *n_ser = n;
    }
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_IsArray(it) ? cJSON_GetArrayItem(it, i) : it;
        if (cJSON_IsNull(e)) continue;
        if (!cJSON_IsNumber(e))
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s:%ld: field '%s' entry %d must be a number", at->path, at->line,
                            name, i);
        if (isfinite(e->valuedouble)) MOEC_TRY(push(&(*ser)[i], step, e->valuedouble));
    }
    return MOEC_OK;
}

/* Validates expert_load's shape ([rows][cols] numbers/nulls). *rows = 0 when absent. */
static moec_status load_shape(const cJSON *it, const src_pos *at, int *rows, int *cols) {
    *rows = *cols = 0;
    if (!it || cJSON_IsNull(it)) return MOEC_OK;
    int r = cJSON_IsArray(it) ? cJSON_GetArraySize(it) : -1, cl = -1;
    for (int i = 0; i < r; i++) {
        const cJSON *row = cJSON_GetArrayItem(it, i);
        int n = cJSON_IsArray(row) ? cJSON_GetArraySize(row) : -1;
        if (n < 1 || (cl >= 0 && n != cl)) { r = -1; break; }
        cl = n;
        for (const cJSON *e = row->child; e; e = e->next)
            if (!cJSON_IsNumber(e) && !cJSON_IsNull(e)) { r = -1; break; }
    }
    if (r < 1 || r > 4096 || cl > 65536)
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s:%ld: field 'expert_load' must be a non-empty list of equally long "
                        "lists of numbers ([MoE layer][expert])", at->path, at->line);
    *rows = r;
    *cols = cl;
    return MOEC_OK;
}

/* One pass over the file. pass 0: everything but the expert-load average; pass 1: the average. */
static moec_status read_pass(const char *path, int pass, metrics_data *d) {
    FILE *f = fopen(path, "r");
    if (!f) return MOEC_ERR(MOEC_ERR_IO, "plot: cannot open %s: %s", path, strerror(errno));
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t len;
    src_pos at = {path, 0};
    moec_status s = MOEC_OK;
    while (s == MOEC_OK && (len = getline(&line, &line_cap, f)) >= 0) {
        at.line++;
        size_t k = 0;
        while (k < (size_t)len && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r' || line[k] == '\n')) k++;
        if (k == (size_t)len) continue; /* blank line */
        if (pass == 1 && !strstr(line, "\"expert_load\"")) continue;
        cJSON *o = cJSON_ParseWithLength(line, (size_t)len);
        if (!o || !cJSON_IsObject(o)) {
            s = MOEC_ERR(MOEC_ERR_FORMAT, "%s:%ld: not a JSON object (malformed metrics record)", path, at.line);
            cJSON_Delete(o);
            break;
        }
        int found;
        double step = 0, v = 0;
        s = get_num(o, "step", &at, &found, &step);
        if (s != MOEC_OK || !found) { /* records without a step (run header, config) are not plotted */
            cJSON_Delete(o);
            continue;
        }
        const cJSON *load = cJSON_GetObjectItemCaseSensitive(o, "expert_load");
        int rows, cols;
        s = load_shape(load, &at, &rows, &cols);
        if (s == MOEC_OK && rows > 0 && d->load_rows > 0 && (rows != d->load_rows || cols != d->load_cols))
            s = MOEC_ERR(MOEC_ERR_FORMAT, "%s:%ld: expert_load is %dx%d but earlier records are %dx%d", path, at.line,
                         rows, cols, d->load_rows, d->load_cols);
        if (s == MOEC_OK && pass == 0) {
            if (rows > 0) {
                if (d->n_load_records++ == 0) {
                    d->load_rows = rows;
                    d->load_cols = cols;
                    d->load_step_min = d->load_step_max = step;
                }
                d->load_step_min = fmin(d->load_step_min, step);
                d->load_step_max = fmax(d->load_step_max, step);
            }
            if ((s = get_num(o, "loss", &at, &found, &v)) == MOEC_OK && found) s = push(&d->loss, step, v);
            if (s == MOEC_OK && (s = get_num(o, "val_loss", &at, &found, &v)) == MOEC_OK && found)
                s = push(&d->val_loss, step, v);
            if (s == MOEC_OK && (s = get_num(o, "lr", &at, &found, &v)) == MOEC_OK && found) s = push(&d->lr, step, v);
            if (s == MOEC_OK) s = get_layer_list(o, "drop_rate", &at, step, &d->drop, &d->n_drop);
            if (s == MOEC_OK) s = get_layer_list(o, "aux_coef", &at, step, &d->aux, &d->n_aux);
        } else if (s == MOEC_OK && rows > 0 && step >= d->load_cutoff) {
            int r = 0;
            for (const cJSON *row = load->child; row; row = row->next, r++) {
                int col = 0;
                for (const cJSON *e = row->child; e; e = e->next, col++)
                    if (cJSON_IsNumber(e) && isfinite(e->valuedouble))
                        d->load_sum[(size_t)r * (size_t)cols + (size_t)col] += e->valuedouble;
            }
            d->n_load_avg++;
        }
        cJSON_Delete(o);
    }
    if (s == MOEC_OK && ferror(f)) s = MOEC_ERR(MOEC_ERR_IO, "plot: error reading %s: %s", path, strerror(errno));
    free(line);
    fclose(f);
    return s;
}

/* ---------- moec plot: charts ---------- */

#define PLOT_W 800
#define PLOT_H 500

static moec_status save(moec_canvas *c, const char *dir, const char *name, int *n_written) {
    char *path = moec_path_join(dir, name);
    if (!path) return MOEC_ERR(MOEC_ERR_NOMEM, "plot: out of memory");
    moec_status s = moec_canvas_write_png(c, path);
    free(path);
    if (s == MOEC_OK) (*n_written)++;
    return s;
}

/* Data range of the given series; returns 0 if they hold no finite points (positive ones when positive_only). */
static int range_of(series *const *ss, int n, int positive_only, double *xmin, double *xmax, double *ymin,
                    double *ymax) {
    int any = 0;
    *xmin = *ymin = INFINITY;
    *xmax = *ymax = -INFINITY;
    for (int k = 0; k < n; k++)
        for (size_t i = 0; i < ss[k]->n; i++) {
            if (positive_only && ss[k]->y[i] <= 0) continue;
            any = 1;
            *xmin = fmin(*xmin, ss[k]->x[i]);
            *xmax = fmax(*xmax, ss[k]->x[i]);
            *ymin = fmin(*ymin, ss[k]->y[i]);
            *ymax = fmax(*ymax, ss[k]->y[i]);
        }
    return any;
}

/* Pads the y range by 5% (multiplicatively when log); does not cross 0 for non-negative data. */
static void pad_y(moec_axes *ax, double ymin, double ymax) {
    if (ax->log_y) {
        double r = pow(ymax / ymin, 0.05);
        ax->ymin = ymin / r;
        ax->ymax = ymax * r;
        return;
    }
    double pad = (ymax - ymin) * 0.05;
    if (pad == 0) pad = ymax != 0 ? fabs(ymax) * 0.1 : 1;
    ax->ymin = (ymin >= 0 && ymin - pad < 0) ? 0 : ymin - pad;
    ax->ymax = ymax + pad;
}

/* The plot-area corner whose legend box would cover the fewest data points (ties: top-right first). */
static int quiet_corner(moec_axes *ax, series *const *ss, int n, const char *const *names, int m) {
    int best = 0;
    size_t best_hits = SIZE_MAX;
    for (int corner = 0; corner < 4; corner++) {
        ax->legend_corner = corner;
        int x0, y0, x1, y1;
        moec_axes_legend_box(ax, names, m, &x0, &y0, &x1, &y1);
        size_t hits = 0;
        for (int k = 0; k < n; k++)
            for (size_t i = 0; i < ss[k]->n; i++) {
                if (ax->log_y && ss[k]->y[i] <= 0) continue;
                double px = moec_axes_px(ax, ss[k]->x[i]), py = moec_axes_py(ax, ss[k]->y[i]);
                hits += px >= x0 - 4 && px < x1 + 4 && py >= y0 - 4 && py < y1 + 4;
            }
        if (hits < best_hits) {
            best_hits = hits;
            best = corner;
        }
    }
    return best;
}

/* Step-vs-value chart of n series, one legend entry each (names NULL: no legend). */
static moec_status line_chart(const char *dir, const char *file, const char *title, const char *ylabel,
                              series *const *ss, const char *const *names, const uint32_t *colors,
                              const double *widths, const int *marker, int n, int allow_log, int *n_written) {
    double xmin, xmax, ymin, ymax;
    if (!range_of(ss, n, 0, &xmin, &xmax, &ymin, &ymax)) return MOEC_OK; /* nothing to draw */
    /* start the step axis at 0 when the data nearly does (steps 1..N) */
    if (xmin > 0 && xmin <= 0.05 * (xmax - xmin)) xmin = 0;
    moec_axes ax = {.title = title, .xlabel = "step", .ylabel = ylabel, .grid = 1, .x_integer = 1,
                    .xmin = xmin, .xmax = xmax};
    /* Log scale when the positive data spans more than 30x (loss from init, lr warmup, alpha schedules). */
    if (allow_log && ymin > 0 && ymax / ymin > 30) ax.log_y = 1;
    pad_y(&ax, ymin, ymax);
    moec_canvas c;
    MOEC_TRY(moec_canvas_init(&c, PLOT_W, PLOT_H, 0xF7F7F7));
    moec_axes_draw(&ax, &c);
    moec_status s = MOEC_OK;
    for (int k = 0; k < n && s == MOEC_OK; k++) {
        if (ss[k]->n == 0) continue;
        if (!marker || !marker[k] || ss[k]->n > 1)
            s = moec_axes_series(&ax, &c, ss[k]->x, ss[k]->y, ss[k]->n, widths ? widths[k] : 2, colors[k]);
        if (marker && marker[k]) moec_axes_markers(&ax, &c, ss[k]->x, ss[k]->y, ss[k]->n, 3.5, colors[k]);
    }
    if (s == MOEC_OK && names) {
        const char *ln[64];
        uint32_t lc[64];
        int lm[64], m = 0;
        for (int k = 0; k < n && m < 64; k++)
            if (ss[k]->n > 0) {
                ln[m] = names[k];
                lc[m] = colors[k];
                lm[m++] = marker ? marker[k] : 0;
            }
        if (m > 1 || n > 1) {
            ax.legend_corner = quiet_corner(&ax, ss, n, ln, m);
            moec_axes_legend(&ax, &c, ln, lc, lm, m);
        }
    }
    if (s == MOEC_OK) s = save(&c, dir, file, n_written);
    moec_canvas_free(&c);
    return s;
}

static moec_status loss_chart(const char *dir, metrics_data *d, int *n_written) {
    series smooth = {0};
    /* Centred moving average (window ~2.5% of the run, narrowed symmetrically at the ends): unlike an EMA it does
     * not lag behind a falling loss, so it can be read against the validation points. */
    if (d->loss.n >= 40) {
        size_t n = d->loss.n, half = n / 80 + 1;
        double *pre = malloc((n + 1) * sizeof *pre);
        if (!pre) return MOEC_ERR(MOEC_ERR_NOMEM, "plot: out of memory");
        pre[0] = 0;
        for (size_t i = 0; i < n; i++) pre[i + 1] = pre[i] + d->loss.y[i];
        for (size_t i = 0; i < n; i++) {
            size_t h = half;
            if (h > i) h = i;
            if (h > n - 1 - i) h = n - 1 - i;
            if (!series_push(&smooth, d->loss.x[i], (pre[i + h + 1] - pre[i - h]) / (double)(2 * h + 1))) {
                free(pre);
                series_free(&smooth);
                return MOEC_ERR(MOEC_ERR_NOMEM, "plot: out of memory");
            }
        }
        free(pre);
    }
    series *ss[3];
    const char *names[3];
    uint32_t colors[3];
    double widths[3];
    int marker[3], n = 0;
    if (smooth.n) {
        ss[n] = &d->loss; names[n] = "train"; colors[n] = 0xA9C8E6; widths[n] = 1.2; marker[n++] = 0;
        ss[n] = &smooth; names[n] = "train (smoothed)"; colors[n] = 0x1f77b4; widths[n] = 2.2; marker[n++] = 0;
    } else {
        ss[n] = &d->loss; names[n] = "train"; colors[n] = 0x1f77b4; widths[n] = 2; marker[n++] = 0;
    }
    ss[n] = &d->val_loss; names[n] = "validation"; colors[n] = 0xff7f0e; widths[n] = 2; marker[n++] = 1;
    moec_status s = line_chart(dir, "loss.png", "loss", "loss", ss, names, colors, widths, marker, n, 1, n_written);
    series_free(&smooth);
    return s;
}

static moec_status layer_chart(const char *dir, const char *file, const char *title, const char *ylabel,
                               series *layers, int n, int allow_log, int *n_written) {
    if (n <= 0) return MOEC_OK;
    series **ss = malloc((size_t)n * sizeof *ss);
    char (*names)[24] = malloc((size_t)n * sizeof *names);
    const char **np = malloc((size_t)n * sizeof *np);
    uint32_t *colors = malloc((size_t)n * sizeof *colors);
    moec_status s = MOEC_OK;
    if (!ss || !names || !np || !colors) s = MOEC_ERR(MOEC_ERR_NOMEM, "plot: out of memory");
    for (int i = 0; s == MOEC_OK && i < n; i++) {
        ss[i] = &layers[i];
        snprintf(names[i], sizeof names[i], "layer %d", i);
        np[i] = names[i];
        colors[i] = moec_series_color(i, n);
    }
    if (s == MOEC_OK)
        s = line_chart(dir, file, title, ylabel, ss, n <= 64 ? np : NULL, colors, NULL, NULL, n, allow_log,
                       n_written);
    free(ss);
    free(names);
    free(np);
    free(colors);
    return s;
}

static moec_status load_chart(const char *dir, metrics_data *d, int *n_written) {
    int L = d->load_rows, E = d->load_cols;
    size_t n = (size_t)L * (size_t)E;
    double vmin = INFINITY, vmax = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        d->load_sum[i] /= d->n_load_avg;
        vmin = fmin(vmin, d->load_sum[i]);
        vmax = fmax(vmax, d->load_sum[i]);
    }
    if (!(vmax > vmin)) { vmin -= 0.5 * fabs(vmin) + 1e-3; vmax += 0.5 * fabs(vmax) + 1e-3; }

    char title[128];
    if (d->load_step_max > d->load_cutoff)
        snprintf(title, sizeof title, "expert load, mean of steps %.0f-%.0f", d->load_cutoff, d->load_step_max);
    else
        snprintf(title, sizeof title, "expert load at step %.0f", d->load_step_max);
    moec_axes ax = {.title = title, .xlabel = "expert", .ylabel = "MoE layer", .x_integer = 1, .y_integer = 1,
                    .xmin = -0.5, .xmax = E - 0.5, .ymin = -0.5, .ymax = L - 0.5, .right_margin = 150};
    moec_canvas c;
    MOEC_TRY(moec_canvas_init(&c, PLOT_W, PLOT_H, 0xF7F7F7));
    moec_axes_draw(&ax, &c);
    for (int r = 0; r < L; r++)
        for (int e = 0; e < E; e++) {
            int x0 = (int)lrint(moec_axes_px(&ax, e - 0.5)), x1 = (int)lrint(moec_axes_px(&ax, e + 0.5));
            int y0 = (int)lrint(moec_axes_py(&ax, r + 0.5)), y1 = (int)lrint(moec_axes_py(&ax, r - 0.5));
            double t = (d->load_sum[(size_t)r * (size_t)E + (size_t)e] - vmin) / (vmax - vmin);
            moec_canvas_rect(&c, x0, y0, x1, y1, moec_colormap(t));
        }

    /* colour bar with its own ticks */
    int th = moec_text_height(MOEC_PLOT_FONT_SCALE);
    int bx0 = ax.x1 + 24, bx1 = bx0 + 22, by0 = ax.y0, by1 = ax.y1;
    for (int y = by0; y < by1; y++)
        moec_canvas_rect(&c, bx0, y, bx1, y + 1, moec_colormap((double)(by1 - 1 - y) / (by1 - by0 - 1)));
    moec_canvas_rect(&c, bx0 - 1, by0 - 1, bx1 + 1, by0, MOEC_PLOT_COL_AXIS);
    moec_canvas_rect(&c, bx0 - 1, by1, bx1 + 1, by1 + 1, MOEC_PLOT_COL_AXIS);
    moec_canvas_rect(&c, bx0 - 1, by0, bx0, by1, MOEC_PLOT_COL_AXIS);
    moec_canvas_rect(&c, bx1, by0, bx1 + 1, by1, MOEC_PLOT_COL_AXIS);
    double tk[MOEC_PLOT_MAX_TICKS], step;
    int nt = moec_nice_ticks(vmin, vmax, 6, 0, tk, MOEC_PLOT_MAX_TICKS, &step);
    char lbl[48];
    for (int i = 0; i < nt; i++) {
        int py = (int)lrint(by1 - (tk[i] - vmin) / (vmax - vmin) * (by1 - by0));
        moec_canvas_rect(&c, bx1, py, bx1 + MOEC_PLOT_TICK_LEN, py + 1, MOEC_PLOT_COL_AXIS);
        moec_tick_label(lbl, sizeof lbl, tk[i], step);
        moec_canvas_text(&c, bx1 + MOEC_PLOT_TICK_LEN + 4, py - th / 2, lbl, MOEC_PLOT_FONT_SCALE, MOEC_PLOT_COL_TEXT);
    }
    /* uniform routing (1/E) marked on the bar when in range */
    double u = 1.0 / E;
    if (u >= vmin && u <= vmax) {
        int py = (int)lrint(by1 - (u - vmin) / (vmax - vmin) * (by1 - by0));
        moec_canvas_rect(&c, bx0 - 6, py, bx0, py + 2, 0xd62728);
        moec_canvas_rect(&c, bx0, py, bx1, py + 1, 0xFFFFFF);
    }
    moec_canvas_text(&c, bx0 - 8, by1 + MOEC_PLOT_TICK_LEN + 6, "fraction", MOEC_PLOT_FONT_SCALE, MOEC_PLOT_COL_TEXT);
    moec_canvas_text(&c, bx0 - 8, by1 + MOEC_PLOT_TICK_LEN + 6 + th + 12, "(red: 1/E)", MOEC_PLOT_FONT_SCALE, 0xd62728);
    moec_status s = save(&c, dir, "expert_load.png", n_written);
    moec_canvas_free(&c);
    return s;
}

moec_status moec_plot_metrics(const char *metrics_jsonl, const char *out_dir, int *n_written) {
    int written = 0;
    if (n_written) *n_written = 0;
    if (!metrics_jsonl || !out_dir) return MOEC_ERR(MOEC_ERR_ARG, "plot: NULL path");
    metrics_data d;
    memset(&d, 0, sizeof d);
    moec_status s = read_pass(metrics_jsonl, 0, &d);
    if (s == MOEC_OK && d.n_load_records > 0) {
        d.load_cutoff = d.load_step_max - 0.1 * (d.load_step_max - d.load_step_min);
        d.load_sum = calloc((size_t)d.load_rows * (size_t)d.load_cols, sizeof *d.load_sum);
        s = d.load_sum ? read_pass(metrics_jsonl, 1, &d) : MOEC_ERR(MOEC_ERR_NOMEM, "plot: out of memory");
    }
    if (s == MOEC_OK && mkdir(out_dir, 0755) != 0 && errno != EEXIST)
        s = MOEC_ERR(MOEC_ERR_IO, "plot: cannot create directory %s: %s", out_dir, strerror(errno));
    if (s == MOEC_OK) s = loss_chart(out_dir, &d, &written);
    if (s == MOEC_OK) {
        series *lr = &d.lr;
        uint32_t col = 0x2ca02c;
        s = line_chart(out_dir, "lr.png", "learning rate", "lr", &lr, NULL, &col, NULL, NULL, 1, 0, &written);
    }
    if (s == MOEC_OK)
        s = layer_chart(out_dir, "drop_rate.png", "token drop rate per MoE layer", "fraction dropped", d.drop,
                        d.n_drop, 0, &written);
    if (s == MOEC_OK)
        s = layer_chart(out_dir, "aux_coef.png", "aux-loss coefficient (alpha) per MoE layer", "alpha", d.aux,
                        d.n_aux, 1, &written);
    if (s == MOEC_OK && d.n_load_avg > 0) s = load_chart(out_dir, &d, &written);
    data_free(&d);
    if (n_written) *n_written = written;
    return s;
}
