/* plot.c — raster canvas, axes, and `moec plot` (metrics.jsonl -> PNG charts). See plot.h. */
#include "train/plot.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/png.h"
#include "train/font5x7.h"

/* ---------- canvas ---------- */

moec_status moec_canvas_init(moec_canvas *c, int w, int h, uint32_t background) {
    memset(c, 0, sizeof *c);
    if (w <= 0 || h <= 0 || w > 16384 || h > 16384)
        return MOEC_ERR(MOEC_ERR_ARG, "plot: canvas size %dx%d out of range (1..16384)", w, h);
    c->rgb = malloc((size_t)w * (size_t)h * 3);
    if (!c->rgb) return MOEC_ERR(MOEC_ERR_NOMEM, "plot: cannot allocate a %dx%d canvas", w, h);
    c->w = w;
    c->h = h;
    moec_canvas_unclip(c);
    moec_canvas_fill(c, background);
    return MOEC_OK;
}

void moec_canvas_free(moec_canvas *c) {
    free(c->rgb);
    free(c->mask);
    memset(c, 0, sizeof *c);
}

void moec_canvas_clip(moec_canvas *c, int x0, int y0, int x1, int y1) {
    c->cx0 = x0 > 0 ? x0 : 0;
    c->cy0 = y0 > 0 ? y0 : 0;
    c->cx1 = x1 < c->w ? x1 : c->w;
    c->cy1 = y1 < c->h ? y1 : c->h;
}

void moec_canvas_unclip(moec_canvas *c) { moec_canvas_clip(c, 0, 0, c->w, c->h); }

void moec_canvas_fill(moec_canvas *c, uint32_t color) {
    size_t n = (size_t)c->w * (size_t)c->h;
    for (size_t i = 0; i < n; i++) {
        c->rgb[3 * i] = (uint8_t)(color >> 16);
        c->rgb[3 * i + 1] = (uint8_t)(color >> 8);
        c->rgb[3 * i + 2] = (uint8_t)color;
    }
}

/* Blend color over pixel (x, y) with opacity a in [0, 1]; clipped. */
static void blend(moec_canvas *c, int x, int y, uint32_t color, double a) {
    if (x < c->cx0 || x >= c->cx1 || y < c->cy0 || y >= c->cy1 || a <= 0) return;
    uint8_t *p = c->rgb + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
    if (a > 1) a = 1;
    for (int k = 0; k < 3; k++) {
        double s = (double)((color >> (16 - 8 * k)) & 0xFF);
        p[k] = (uint8_t)lrint(p[k] + (s - p[k]) * a);
    }
}

void moec_canvas_rect(moec_canvas *c, int x0, int y0, int x1, int y1, uint32_t color) {
    if (x0 < c->cx0) x0 = c->cx0;
    if (y0 < c->cy0) y0 = c->cy0;
    if (x1 > c->cx1) x1 = c->cx1;
    if (y1 > c->cy1) y1 = c->cy1;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            uint8_t *p = c->rgb + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
            p[0] = (uint8_t)(color >> 16);
            p[1] = (uint8_t)(color >> 8);
            p[2] = (uint8_t)color;
        }
}

/* Coverage of the segment (thickness `width`, round caps) at each pixel centre, max-accumulated into the mask.
 * Updates the dirty box [*bx0,*bx1) x [*by0,*by1). */
static void mask_segment(moec_canvas *c, double x0, double y0, double x1, double y1, double width, int *bx0,
                         int *by0, int *bx1, int *by1) {
    double hw = width * 0.5;
    double lo_x = fmin(x0, x1) - hw - 1, hi_x = fmax(x0, x1) + hw + 1;
    double lo_y = fmin(y0, y1) - hw - 1, hi_y = fmax(y0, y1) + hw + 1;
    if (hi_x < c->cx0 || lo_x >= c->cx1 || hi_y < c->cy0 || lo_y >= c->cy1) return;
    int ix0 = lo_x < c->cx0 ? c->cx0 : (int)lo_x, ix1 = hi_x >= c->cx1 ? c->cx1 : (int)hi_x + 1;
    int iy0 = lo_y < c->cy0 ? c->cy0 : (int)lo_y, iy1 = hi_y >= c->cy1 ? c->cy1 : (int)hi_y + 1;
    double dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
    for (int y = iy0; y < iy1; y++) {
        float *row = c->mask + (size_t)y * (size_t)c->w;
        double py = y + 0.5 - y0;
        for (int x = ix0; x < ix1; x++) {
            double px = x + 0.5 - x0;
            double t = len2 > 0 ? (px * dx + py * dy) / len2 : 0;
            t = t < 0 ? 0 : t > 1 ? 1 : t;
            double ex = px - t * dx, ey = py - t * dy;
            double cov = hw + 0.5 - sqrt(ex * ex + ey * ey);
            if (cov <= 0) continue;
            if (cov > 1) cov = 1;
            if (row[x] < (float)cov) row[x] = (float)cov;
        }
    }
    if (ix0 < *bx0) *bx0 = ix0;
    if (iy0 < *by0) *by0 = iy0;
    if (ix1 > *bx1) *bx1 = ix1;
    if (iy1 > *by1) *by1 = iy1;
}

/* Composite the mask's dirty box in `color` and clear it. */
static void mask_flush(moec_canvas *c, uint32_t color, int bx0, int by0, int bx1, int by1) {
    for (int y = by0; y < by1; y++)
        for (int x = bx0; x < bx1; x++) {
            float *m = c->mask + (size_t)y * (size_t)c->w + (size_t)x;
            if (*m > 0) {
                blend(c, x, y, color, *m);
                *m = 0;
            }
        }
}

static moec_status mask_ensure(moec_canvas *c) {
    if (c->mask) return MOEC_OK;
    c->mask = calloc((size_t)c->w * (size_t)c->h, sizeof *c->mask);
    return c->mask ? MOEC_OK : MOEC_ERR(MOEC_ERR_NOMEM, "plot: cannot allocate line mask");
}

moec_status moec_canvas_polyline(moec_canvas *c, const double *xs, const double *ys, size_t n, double width,
                                 uint32_t color) {
    MOEC_TRY(mask_ensure(c));
    int bx0 = c->w, by0 = c->h, bx1 = 0, by1 = 0;
    int have_prev = 0;
    double px = 0, py = 0;
    for (size_t i = 0; i < n; i++) {
        /* Far-off coordinates (a log axis near 0) are clamped so bounding boxes stay small and finite. */
        if (!isfinite(xs[i]) || !isfinite(ys[i])) { have_prev = 0; continue; }
        double x = fmax(-1e4, fmin(1e4, xs[i])), y = fmax(-1e4, fmin(1e4, ys[i]));
        if (have_prev) mask_segment(c, px, py, x, y, width, &bx0, &by0, &bx1, &by1);
        else if (n == 1 || i + 1 == n || !isfinite(xs[i + 1]) || !isfinite(ys[i + 1]))
            mask_segment(c, x, y, x, y, width, &bx0, &by0, &bx1, &by1); /* isolated point: a dot */
        px = x; py = y; have_prev = 1;
    }
    mask_flush(c, color, bx0, by0, bx1, by1);
    return MOEC_OK;
}

void moec_canvas_line(moec_canvas *c, double x0, double y0, double x1, double y1, double width, uint32_t color) {
    double xs[2] = {x0, x1}, ys[2] = {y0, y1};
    if (moec_canvas_polyline(c, xs, ys, 2, width, color) != MOEC_OK) return; /* no memory: nothing drawn */
}

void moec_canvas_disc(moec_canvas *c, double x, double y, double radius, uint32_t color) {
    for (int py = (int)floor(y - radius - 1); py <= (int)(y + radius + 1); py++)
        for (int px = (int)floor(x - radius - 1); px <= (int)(x + radius + 1); px++) {
            double d = hypot(px + 0.5 - x, py + 0.5 - y);
            blend(c, px, py, color, radius + 0.5 - d);
        }
}

static const char *glyph(char ch) {
    unsigned char u = (unsigned char)ch;
    if (u < MOEC_FONT_FIRST || u > MOEC_FONT_LAST) u = '?';
    return moec_font5x7[u - MOEC_FONT_FIRST];
}

int moec_text_width(const char *s, int scale) {
    size_t n = strlen(s);
    return n ? (int)(n * 6 - 1) * scale : 0;
}

int moec_text_height(int scale) { return MOEC_FONT_H * scale; }

/* 1 for the letters drawn one row lower (their tails in the cell's spacing row). */
static int descends(char ch) { return ch != 0 && strchr(MOEC_FONT_DESCENDERS, ch) != NULL; }

void moec_canvas_text(moec_canvas *c, int x, int y, const char *s, int scale, uint32_t color) {
    for (; *s; s++, x += 6 * scale) {
        const char *g = glyph(*s);
        int dy = descends(*s) * scale;
        for (int r = 0; r < MOEC_FONT_H; r++)
            for (int col = 0; col < MOEC_FONT_W; col++)
                if (g[r * MOEC_FONT_W + col] == '#')
                    moec_canvas_rect(c, x + col * scale, y + dy + r * scale, x + (col + 1) * scale,
                                     y + dy + (r + 1) * scale, color);
    }
}

void moec_canvas_text_up(moec_canvas *c, int x, int y, const char *s, int scale, uint32_t color) {
    /* Glyph column col maps to screen row y - col; glyph row r maps to screen column x + r. */
    for (; *s; s++, y -= 6 * scale) {
        const char *g = glyph(*s);
        int dx = descends(*s) * scale;
        for (int r = 0; r < MOEC_FONT_H; r++)
            for (int col = 0; col < MOEC_FONT_W; col++)
                if (g[r * MOEC_FONT_W + col] == '#')
                    moec_canvas_rect(c, x + dx + r * scale, y - (col + 1) * scale, x + dx + (r + 1) * scale,
                                     y - col * scale, color);
    }
}

moec_status moec_canvas_write_png(const moec_canvas *c, const char *path) {
    return moec_png_write(path, c->rgb, c->w, c->h);
}

/* ---------- colours ---------- */

uint32_t moec_colormap(double t) {
    /* Samples of matplotlib's viridis at t = 0, 1/8, ..., 1, linearly interpolated. */
    static const uint8_t k[9][3] = {{68, 1, 84},    {71, 44, 122},  {59, 81, 139},   {44, 113, 142}, {33, 144, 141},
                                    {39, 173, 129}, {92, 200, 99},  {170, 220, 50},  {253, 231, 37}};
    if (!(t >= 0)) t = 0; /* also NaN */
    if (t > 1) t = 1;
    double f = t * 8;
    int i = (int)f;
    if (i >= 8) i = 7;
    f -= i;
    uint32_t out = 0;
    for (int ch = 0; ch < 3; ch++)
        out = (out << 8) | (uint32_t)lrint(k[i][ch] + (k[i + 1][ch] - k[i][ch]) * f);
    return out;
}

uint32_t moec_series_color(int i, int n) {
    static const uint32_t tab[10] = {0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd,
                                     0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22, 0x17becf};
    if (n <= 10) return tab[((i % 10) + 10) % 10];
    return moec_colormap(0.92 * i / (n - 1)); /* stop short of viridis' pale yellow end */
}

/* ---------- ticks ---------- */

static double nice_step(double span, int max_ticks) {
    double raw = span / (max_ticks > 1 ? max_ticks - 1 : 1);
    double e = pow(10, floor(log10(raw)));
    double f = raw / e;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * e;
}

int moec_nice_ticks(double lo, double hi, int max_ticks, int integer_only, double *ticks, int cap, double *step) {
    if (!(hi > lo) || !isfinite(lo) || !isfinite(hi)) {
        if (step) *step = 1;
        if (cap > 0 && isfinite(lo)) { ticks[0] = lo; return 1; }
        return 0;
    }
    double s = nice_step(hi - lo, max_ticks);
    if (integer_only && s < 1) s = 1;
    if (step) *step = s;
    int n = 0;
    for (double k = ceil(lo / s - 1e-9); n < cap; k += 1) {
        double t = k * s;
        if (t > hi + s * 1e-9) break;
        ticks[n++] = fabs(t) < s * 1e-9 ? 0 : t;
    }
    return n;
}

void moec_tick_label(char *buf, size_t cap, double v, double step) {
    double av = fabs(v);
    if (av < step * 1e-9) v = av = 0;
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (av != 0 && (av >= 1e7 || dec > 5)) {
        snprintf(buf, cap, "%.2g", v); /* 1e-06, 2.5e+07 */
    } else if (dec == 0 && av >= 10000 && fmod(av, 1000) == 0) {
        snprintf(buf, cap, "%.0fk", v / 1000);
    } else if (dec == 0 && av >= 10000 && fmod(av, 100) == 0) {
        snprintf(buf, cap, "%.1fk", v / 1000);
    } else {
        snprintf(buf, cap, "%.*f", dec, v);
    }
}

/* Log-axis ticks: 1/2/5 x 10^k (or just 10^k over many decades; 1..9 x 10^k when that gives fewer than 2). */
static int log_ticks(double lo, double hi, double *ticks, int cap) {
    int e0 = (int)floor(log10(lo)), e1 = (int)ceil(log10(hi));
    static const int m_all[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, m_125[3] = {1, 2, 5}, m_1[1] = {1};
    const int *sets[3] = {e1 - e0 > 4 ? m_1 : m_125, m_all, m_all};
    int sizes[3] = {e1 - e0 > 4 ? 1 : 3, 9, 9};
    int n = 0;
    for (int pass = 0; pass < 2; pass++) {
        n = 0;
        for (int e = e0; e <= e1; e++)
            for (int j = 0; j < sizes[pass] && n < cap; j++) {
                double t = sets[pass][j] * pow(10, e);
                if (t >= lo * (1 - 1e-9) && t <= hi * (1 + 1e-9)) ticks[n++] = t;
            }
        if (n >= 2) break;
    }
    return n;
}

/* ---------- axes ---------- */

#define FONT_SCALE 2
#define TICK_LEN 5
#define MAX_TICKS 64
static const uint32_t COL_TEXT = 0x202020, COL_AXIS = 0x404040, COL_GRID = 0xE4E4E4, COL_BG = 0xFFFFFF;

double moec_axes_px(const moec_axes *ax, double x) {
    return ax->x0 + (x - ax->xmin) / (ax->xmax - ax->xmin) * (ax->x1 - ax->x0);
}

double moec_axes_py(const moec_axes *ax, double y) {
    double f;
    if (ax->log_y) f = (log10(y) - log10(ax->ymin)) / (log10(ax->ymax) - log10(ax->ymin));
    else f = (y - ax->ymin) / (ax->ymax - ax->ymin);
    return ax->y1 - f * (ax->y1 - ax->y0);
}

static int y_ticks(const moec_axes *ax, double *t, double *step) {
    if (ax->log_y) {
        *step = 0;
        return log_ticks(ax->ymin, ax->ymax, t, MAX_TICKS);
    }
    return moec_nice_ticks(ax->ymin, ax->ymax, 7, ax->y_integer, t, MAX_TICKS, step);
}

static void y_label(char *buf, size_t cap, double v, double step, int log_y) {
    if (log_y) snprintf(buf, cap, "%g", v);
    else moec_tick_label(buf, cap, v, step);
}

void moec_axes_draw(moec_axes *ax, moec_canvas *c) {
    int th = moec_text_height(FONT_SCALE);
    if (!(ax->xmax > ax->xmin)) { ax->xmin -= 0.5; ax->xmax += 0.5; }
    if (!(ax->ymax > ax->ymin)) {
        if (ax->log_y) { ax->ymin /= 2; ax->ymax *= 2; }
        else { double d = fabs(ax->ymin) > 0 ? fabs(ax->ymin) * 0.1 : 1; ax->ymin -= d; ax->ymax += d; }
    }

    double yt[MAX_TICKS], xt[MAX_TICKS], ystep, xstep;
    int nyt = y_ticks(ax, yt, &ystep);
    int ytw = 0;
    char lbl[48];
    for (int i = 0; i < nyt; i++) {
        y_label(lbl, sizeof lbl, yt[i], ystep, ax->log_y);
        int w = moec_text_width(lbl, FONT_SCALE);
        if (w > ytw) ytw = w;
    }
    ax->x0 = 12 + (ax->ylabel ? th + 12 : 0) + ytw + TICK_LEN + 6;
    ax->x1 = c->w - (ax->right_margin > 0 ? ax->right_margin : 30);
    ax->y0 = ax->title ? 20 + th + 14 : 20;
    ax->y1 = c->h - (TICK_LEN + 8 + th + (ax->xlabel ? 12 + th : 0) + 14);

    /* x ticks: fewer when labels are wide, so they never overlap */
    int max_xt = 9, nxt;
    for (;;) {
        nxt = moec_nice_ticks(ax->xmin, ax->xmax, max_xt, ax->x_integer, xt, MAX_TICKS, &xstep);
        int widest = 0;
        for (int i = 0; i < nxt; i++) {
            moec_tick_label(lbl, sizeof lbl, xt[i], xstep);
            int w = moec_text_width(lbl, FONT_SCALE);
            if (w > widest) widest = w;
        }
        if (max_xt <= 2 || nxt <= 1 || (widest + 16) * nxt <= ax->x1 - ax->x0) break;
        max_xt--;
    }

    moec_canvas_rect(c, ax->x0, ax->y0, ax->x1, ax->y1, COL_BG);
    for (int i = 0; i < nyt; i++) {
        int py = (int)lrint(moec_axes_py(ax, yt[i]));
        if (ax->grid) moec_canvas_rect(c, ax->x0, py, ax->x1, py + 1, COL_GRID);
        moec_canvas_rect(c, ax->x0 - TICK_LEN, py, ax->x0, py + 1, COL_AXIS);
        y_label(lbl, sizeof lbl, yt[i], ystep, ax->log_y);
        moec_canvas_text(c, ax->x0 - TICK_LEN - 4 - moec_text_width(lbl, FONT_SCALE), py - th / 2, lbl, FONT_SCALE,
                         COL_TEXT);
    }
    for (int i = 0; i < nxt; i++) {
        int px = (int)lrint(moec_axes_px(ax, xt[i]));
        if (ax->grid) moec_canvas_rect(c, px, ax->y0, px + 1, ax->y1, COL_GRID);
        moec_canvas_rect(c, px, ax->y1, px + 1, ax->y1 + TICK_LEN, COL_AXIS);
        moec_tick_label(lbl, sizeof lbl, xt[i], xstep);
        moec_canvas_text(c, px - moec_text_width(lbl, FONT_SCALE) / 2, ax->y1 + TICK_LEN + 6, lbl, FONT_SCALE,
                         COL_TEXT);
    }
    /* frame */
    moec_canvas_rect(c, ax->x0 - 1, ax->y0 - 1, ax->x1 + 1, ax->y0, COL_AXIS);
    moec_canvas_rect(c, ax->x0 - 1, ax->y1, ax->x1 + 1, ax->y1 + 1, COL_AXIS);
    moec_canvas_rect(c, ax->x0 - 1, ax->y0, ax->x0, ax->y1, COL_AXIS);
    moec_canvas_rect(c, ax->x1, ax->y0, ax->x1 + 1, ax->y1, COL_AXIS);

    if (ax->title) {
        int tw = moec_text_width(ax->title, FONT_SCALE);
        int tx = (ax->x0 + ax->x1) / 2 - tw / 2;
        if (tx < 4) tx = 4;
        moec_canvas_text(c, tx, 18, ax->title, FONT_SCALE, COL_TEXT);
    }
    if (ax->xlabel) {
        int tw = moec_text_width(ax->xlabel, FONT_SCALE);
        moec_canvas_text(c, (ax->x0 + ax->x1) / 2 - tw / 2, ax->y1 + TICK_LEN + 6 + th + 12, ax->xlabel, FONT_SCALE,
                         COL_TEXT);
    }
    if (ax->ylabel) {
        int tw = moec_text_width(ax->ylabel, FONT_SCALE);
        moec_canvas_text_up(c, 12, (ax->y0 + ax->y1) / 2 + tw / 2, ax->ylabel, FONT_SCALE, COL_TEXT);
    }
}

/* Map data to pixels in a scratch array (so moec_canvas_polyline sees pixel coordinates). */
static moec_status to_pixels(const moec_axes *ax, const double *x, const double *y, size_t n, double **px,
                             double **py) {
    *px = malloc(n * sizeof **px + 1);
    *py = malloc(n * sizeof **py + 1);
    if (!*px || !*py) {
        free(*px); free(*py);
        return MOEC_ERR(MOEC_ERR_NOMEM, "plot: out of memory for %zu points", n);
    }
    for (size_t i = 0; i < n; i++) {
        int ok = isfinite(x[i]) && isfinite(y[i]) && !(ax->log_y && y[i] <= 0);
        (*px)[i] = ok ? moec_axes_px(ax, x[i]) : NAN;
        (*py)[i] = ok ? moec_axes_py(ax, y[i]) : NAN;
    }
    return MOEC_OK;
}

moec_status moec_axes_series(const moec_axes *ax, moec_canvas *c, const double *x, const double *y, size_t n,
                             double width, uint32_t color) {
    double *px, *py;
    MOEC_TRY(to_pixels(ax, x, y, n, &px, &py));
    moec_canvas_clip(c, ax->x0, ax->y0, ax->x1, ax->y1);
    moec_status s = moec_canvas_polyline(c, px, py, n, width, color);
    moec_canvas_unclip(c);
    free(px);
    free(py);
    return s;
}

void moec_axes_markers(const moec_axes *ax, moec_canvas *c, const double *x, const double *y, size_t n,
                       double radius, uint32_t color) {
    moec_canvas_clip(c, ax->x0, ax->y0, ax->x1, ax->y1);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i]) || (ax->log_y && y[i] <= 0)) continue;
        moec_canvas_disc(c, moec_axes_px(ax, x[i]), moec_axes_py(ax, y[i]), radius, color);
    }
    moec_canvas_unclip(c);
}

/* Legend geometry shared by the box query and the drawing. */
typedef struct {
    int rows, cols, col_w, bx, by, bw, bh;
} legend_layout;

#define LEGEND_PAD 8
#define LEGEND_SAMPLE 24

static legend_layout legend_layout_of(const moec_axes *ax, const char *const *names, int n) {
    legend_layout g;
    int th = moec_text_height(FONT_SCALE), row_h = th + 8, namew = 0;
    for (int i = 0; i < n; i++) {
        int w = moec_text_width(names[i], FONT_SCALE);
        if (w > namew) namew = w;
    }
    int rows_fit = (ax->y1 - ax->y0 - 2 * LEGEND_PAD - 20) / row_h;
    if (rows_fit < 1) rows_fit = 1;
    g.cols = (n + rows_fit - 1) / rows_fit;
    g.rows = (n + g.cols - 1) / g.cols;
    g.col_w = LEGEND_SAMPLE + 8 + namew + 14;
    g.bw = g.cols * g.col_w + 2 * LEGEND_PAD - 14;
    g.bh = g.rows * row_h + 2 * LEGEND_PAD - 8;
    int right = ax->legend_corner == 0 || ax->legend_corner == 2, top = ax->legend_corner <= 1;
    g.bx = right ? ax->x1 - 10 - g.bw : ax->x0 + 10;
    g.by = top ? ax->y0 + 10 : ax->y1 - 10 - g.bh;
    if (g.bx < ax->x0 + 2) g.bx = ax->x0 + 2;
    if (g.by < ax->y0 + 2) g.by = ax->y0 + 2;
    return g;
}

void moec_axes_legend_box(const moec_axes *ax, const char *const *names, int n, int *x0, int *y0, int *x1,
                          int *y1) {
    legend_layout g = legend_layout_of(ax, names, n);
    *x0 = g.bx;
    *y0 = g.by;
    *x1 = g.bx + g.bw;
    *y1 = g.by + g.bh;
}

void moec_axes_legend(const moec_axes *ax, moec_canvas *c, const char *const *names, const uint32_t *colors,
                      const int *marker, int n) {
    if (n <= 0) return;
    legend_layout g = legend_layout_of(ax, names, n);
    int th = moec_text_height(FONT_SCALE), row_h = th + 8, pad = LEGEND_PAD, sample = LEGEND_SAMPLE;
    int bx = g.bx, by = g.by, bw = g.bw, bh = g.bh, rows = g.rows, col_w = g.col_w;
    for (int y = by; y < by + bh; y++) /* translucent white so the data underneath stays faintly visible */
        for (int x = bx; x < bx + bw; x++) blend(c, x, y, COL_BG, 0.88);
    moec_canvas_rect(c, bx, by, bx + bw, by + 1, 0xBBBBBB);
    moec_canvas_rect(c, bx, by + bh - 1, bx + bw, by + bh, 0xBBBBBB);
    moec_canvas_rect(c, bx, by, bx + 1, by + bh, 0xBBBBBB);
    moec_canvas_rect(c, bx + bw - 1, by, bx + bw, by + bh, 0xBBBBBB);
    for (int i = 0; i < n; i++) {
        int col = i / rows, row = i % rows;
        int x = bx + pad + col * col_w, y = by + pad + row * row_h;
        double cy = y + th / 2.0;
        if (marker && marker[i]) moec_canvas_disc(c, x + sample / 2.0, cy, 4, colors[i]);
        else moec_canvas_line(c, x, cy, x + sample, cy, 3, colors[i]);
        moec_canvas_text(c, x + sample + 8, y, names[i], FONT_SCALE, COL_TEXT);
    }
}

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

static char *join_path(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static moec_status save(moec_canvas *c, const char *dir, const char *name, int *n_written) {
    char *path = join_path(dir, name);
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
    int th = moec_text_height(FONT_SCALE);
    int bx0 = ax.x1 + 24, bx1 = bx0 + 22, by0 = ax.y0, by1 = ax.y1;
    for (int y = by0; y < by1; y++)
        moec_canvas_rect(&c, bx0, y, bx1, y + 1, moec_colormap((double)(by1 - 1 - y) / (by1 - by0 - 1)));
    moec_canvas_rect(&c, bx0 - 1, by0 - 1, bx1 + 1, by0, COL_AXIS);
    moec_canvas_rect(&c, bx0 - 1, by1, bx1 + 1, by1 + 1, COL_AXIS);
    moec_canvas_rect(&c, bx0 - 1, by0, bx0, by1, COL_AXIS);
    moec_canvas_rect(&c, bx1, by0, bx1 + 1, by1, COL_AXIS);
    double tk[MAX_TICKS], step;
    int nt = moec_nice_ticks(vmin, vmax, 6, 0, tk, MAX_TICKS, &step);
    char lbl[48];
    for (int i = 0; i < nt; i++) {
        int py = (int)lrint(by1 - (tk[i] - vmin) / (vmax - vmin) * (by1 - by0));
        moec_canvas_rect(&c, bx1, py, bx1 + TICK_LEN, py + 1, COL_AXIS);
        moec_tick_label(lbl, sizeof lbl, tk[i], step);
        moec_canvas_text(&c, bx1 + TICK_LEN + 4, py - th / 2, lbl, FONT_SCALE, COL_TEXT);
    }
    /* uniform routing (1/E) marked on the bar when in range */
    double u = 1.0 / E;
    if (u >= vmin && u <= vmax) {
        int py = (int)lrint(by1 - (u - vmin) / (vmax - vmin) * (by1 - by0));
        moec_canvas_rect(&c, bx0 - 6, py, bx0, py + 2, 0xd62728);
        moec_canvas_rect(&c, bx0, py, bx1, py + 1, 0xFFFFFF);
    }
    moec_canvas_text(&c, bx0 - 8, by1 + TICK_LEN + 6, "fraction", FONT_SCALE, COL_TEXT);
    moec_canvas_text(&c, bx0 - 8, by1 + TICK_LEN + 6 + th + 12, "(red: 1/E)", FONT_SCALE, 0xd62728);
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
