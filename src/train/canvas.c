/* canvas.c — the raster canvas, text, colours, ticks and axes behind moec's PNG charts. See plot.h. */
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
        return log_ticks(ax->ymin, ax->ymax, t, MOEC_PLOT_MAX_TICKS);
    }
    return moec_nice_ticks(ax->ymin, ax->ymax, 7, ax->y_integer, t, MOEC_PLOT_MAX_TICKS, step);
}

static void y_label(char *buf, size_t cap, double v, double step, int log_y) {
    if (log_y) snprintf(buf, cap, "%g", v);
    else moec_tick_label(buf, cap, v, step);
}

void moec_axes_draw(moec_axes *ax, moec_canvas *c) {
    int th = moec_text_height(MOEC_PLOT_FONT_SCALE);
    if (!(ax->xmax > ax->xmin)) { ax->xmin -= 0.5; ax->xmax += 0.5; }
    if (!(ax->ymax > ax->ymin)) {
        if (ax->log_y) { ax->ymin /= 2; ax->ymax *= 2; }
        else { double d = fabs(ax->ymin) > 0 ? fabs(ax->ymin) * 0.1 : 1; ax->ymin -= d; ax->ymax += d; }
    }

    double yt[MOEC_PLOT_MAX_TICKS], xt[MOEC_PLOT_MAX_TICKS], ystep, xstep;
    int nyt = y_ticks(ax, yt, &ystep);
    int ytw = 0;
    char lbl[48];
    for (int i = 0; i < nyt; i++) {
        y_label(lbl, sizeof lbl, yt[i], ystep, ax->log_y);
        int w = moec_text_width(lbl, MOEC_PLOT_FONT_SCALE);
        if (w > ytw) ytw = w;
    }
    ax->x0 = 12 + (ax->ylabel ? th + 12 : 0) + ytw + MOEC_PLOT_TICK_LEN + 6;
    ax->x1 = c->w - (ax->right_margin > 0 ? ax->right_margin : 30);
    ax->y0 = ax->title ? 20 + th + 14 : 20;
    ax->y1 = c->h - (MOEC_PLOT_TICK_LEN + 8 + th + (ax->xlabel ? 12 + th : 0) + 14);

    /* x ticks: fewer when labels are wide, so they never overlap */
    int max_xt = 9, nxt;
    for (;;) {
        nxt = moec_nice_ticks(ax->xmin, ax->xmax, max_xt, ax->x_integer, xt, MOEC_PLOT_MAX_TICKS, &xstep);
        int widest = 0;
        for (int i = 0; i < nxt; i++) {
            moec_tick_label(lbl, sizeof lbl, xt[i], xstep);
            int w = moec_text_width(lbl, MOEC_PLOT_FONT_SCALE);
            if (w > widest) widest = w;
        }
        if (max_xt <= 2 || nxt <= 1 || (widest + 16) * nxt <= ax->x1 - ax->x0) break;
        max_xt--;
    }

    moec_canvas_rect(c, ax->x0, ax->y0, ax->x1, ax->y1, MOEC_PLOT_COL_BG);
    for (int i = 0; i < nyt; i++) {
        int py = (int)lrint(moec_axes_py(ax, yt[i]));
        if (ax->grid) moec_canvas_rect(c, ax->x0, py, ax->x1, py + 1, MOEC_PLOT_COL_GRID);
        moec_canvas_rect(c, ax->x0 - MOEC_PLOT_TICK_LEN, py, ax->x0, py + 1, MOEC_PLOT_COL_AXIS);
        y_label(lbl, sizeof lbl, yt[i], ystep, ax->log_y);
        moec_canvas_text(c, ax->x0 - MOEC_PLOT_TICK_LEN - 4 - moec_text_width(lbl, MOEC_PLOT_FONT_SCALE), py - th / 2, lbl, MOEC_PLOT_FONT_SCALE,
                         MOEC_PLOT_COL_TEXT);
    }
    for (int i = 0; i < nxt; i++) {
        int px = (int)lrint(moec_axes_px(ax, xt[i]));
        if (ax->grid) moec_canvas_rect(c, px, ax->y0, px + 1, ax->y1, MOEC_PLOT_COL_GRID);
        moec_canvas_rect(c, px, ax->y1, px + 1, ax->y1 + MOEC_PLOT_TICK_LEN, MOEC_PLOT_COL_AXIS);
        moec_tick_label(lbl, sizeof lbl, xt[i], xstep);
        moec_canvas_text(c, px - moec_text_width(lbl, MOEC_PLOT_FONT_SCALE) / 2, ax->y1 + MOEC_PLOT_TICK_LEN + 6, lbl, MOEC_PLOT_FONT_SCALE,
                         MOEC_PLOT_COL_TEXT);
    }
    /* frame */
    moec_canvas_rect(c, ax->x0 - 1, ax->y0 - 1, ax->x1 + 1, ax->y0, MOEC_PLOT_COL_AXIS);
    moec_canvas_rect(c, ax->x0 - 1, ax->y1, ax->x1 + 1, ax->y1 + 1, MOEC_PLOT_COL_AXIS);
    moec_canvas_rect(c, ax->x0 - 1, ax->y0, ax->x0, ax->y1, MOEC_PLOT_COL_AXIS);
    moec_canvas_rect(c, ax->x1, ax->y0, ax->x1 + 1, ax->y1, MOEC_PLOT_COL_AXIS);

    if (ax->title) {
        int tw = moec_text_width(ax->title, MOEC_PLOT_FONT_SCALE);
        int tx = (ax->x0 + ax->x1) / 2 - tw / 2;
        if (tx < 4) tx = 4;
        moec_canvas_text(c, tx, 18, ax->title, MOEC_PLOT_FONT_SCALE, MOEC_PLOT_COL_TEXT);
    }
    if (ax->xlabel) {
        int tw = moec_text_width(ax->xlabel, MOEC_PLOT_FONT_SCALE);
        moec_canvas_text(c, (ax->x0 + ax->x1) / 2 - tw / 2, ax->y1 + MOEC_PLOT_TICK_LEN + 6 + th + 12, ax->xlabel, MOEC_PLOT_FONT_SCALE,
                         MOEC_PLOT_COL_TEXT);
    }
    if (ax->ylabel) {
        int tw = moec_text_width(ax->ylabel, MOEC_PLOT_FONT_SCALE);
        moec_canvas_text_up(c, 12, (ax->y0 + ax->y1) / 2 + tw / 2, ax->ylabel, MOEC_PLOT_FONT_SCALE, MOEC_PLOT_COL_TEXT);
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
    int th = moec_text_height(MOEC_PLOT_FONT_SCALE), row_h = th + 8, namew = 0;
    for (int i = 0; i < n; i++) {
        int w = moec_text_width(names[i], MOEC_PLOT_FONT_SCALE);
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
    int th = moec_text_height(MOEC_PLOT_FONT_SCALE), row_h = th + 8, pad = LEGEND_PAD, sample = LEGEND_SAMPLE;
    int bx = g.bx, by = g.by, bw = g.bw, bh = g.bh, rows = g.rows, col_w = g.col_w;
    for (int y = by; y < by + bh; y++) /* translucent white so the data underneath stays faintly visible */
        for (int x = bx; x < bx + bw; x++) blend(c, x, y, MOEC_PLOT_COL_BG, 0.88);
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
        moec_canvas_text(c, x + sample + 8, y, names[i], MOEC_PLOT_FONT_SCALE, MOEC_PLOT_COL_TEXT);
    }
}
