/* plot.h — a small raster canvas for training plots, and `moec plot`: metrics.jsonl -> PNG charts.
 *
 * Canvas: 8-bit RGB, top-left origin, x right, y down; pixel (x, y) covers [x, x+1) x [y, y+1). Everything is
 * clipped to the canvas's clip rectangle (the whole canvas by default). Lines are antialiased by exact coverage
 * (distance from the pixel centre to the segment); a polyline is rasterised into a coverage mask first so its
 * joints are not blended twice. Text uses the built-in 5x7 font (font5x7.h) in a 6x8 cell times `scale`.
 *
 * Axes: moec_axes_draw lays out a plot area inside the canvas (room for title, tick labels and axis titles),
 * draws grid, ticks with "nice" numbers (1, 2, 5 x 10^k) and the labels; series are then drawn in data units.
 *
 * Not a goal: a general plotting library. It draws what `moec plot` needs, legibly, with no dependencies.
 */
#ifndef MOEC_TRAIN_PLOT_H
#define MOEC_TRAIN_PLOT_H

#include <stddef.h>
#include <stdint.h>
#include "core/error.h"

#define MOEC_RGB(r, g, b) (((uint32_t)(r) << 16) | ((uint32_t)(g) << 8) | (uint32_t)(b))

typedef struct {
    int w, h;
    uint8_t *rgb;              /* [h][w][3] */
    float *mask;               /* [h][w] polyline coverage scratch, allocated on first use, kept all zero */
    int cx0, cy0, cx1, cy1;    /* clip rectangle [cx0, cx1) x [cy0, cy1) */
} moec_canvas;

moec_status moec_canvas_init(moec_canvas *c, int w, int h, uint32_t background);
void moec_canvas_free(moec_canvas *c);
void moec_canvas_clip(moec_canvas *c, int x0, int y0, int x1, int y1); /* intersected with the canvas */
void moec_canvas_unclip(moec_canvas *c);
void moec_canvas_fill(moec_canvas *c, uint32_t color);                  /* whole canvas, ignores clip */
void moec_canvas_rect(moec_canvas *c, int x0, int y0, int x1, int y1, uint32_t color); /* filled [x0,x1)x[y0,y1) */
void moec_canvas_line(moec_canvas *c, double x0, double y0, double x1, double y1, double width, uint32_t color);
/* Antialiased polyline through n points; non-finite points break the line. */
moec_status moec_canvas_polyline(moec_canvas *c, const double *xs, const double *ys, size_t n, double width,
                                 uint32_t color);
void moec_canvas_disc(moec_canvas *c, double x, double y, double radius, uint32_t color);
/* Text with its top-left corner at (x, y). Characters outside printable ASCII draw as '?'. */
void moec_canvas_text(moec_canvas *c, int x, int y, const char *s, int scale, uint32_t color);
/* Text rotated 90 degrees counter-clockwise (reads bottom to top), bottom-left corner of the run at (x, y). */
void moec_canvas_text_up(moec_canvas *c, int x, int y, const char *s, int scale, uint32_t color);
int moec_text_width(const char *s, int scale);
int moec_text_height(int scale);
moec_status moec_canvas_write_png(const moec_canvas *c, const char *path);

/* Viridis-like colour map, t in [0, 1] (clamped). */
uint32_t moec_colormap(double t);
/* Colour i of n distinguishable series colours (a 10-colour palette, a colour-map sweep beyond 10). */
uint32_t moec_series_color(int i, int n);

/* "Nice" tick positions within [lo, hi] (about max_ticks of them, step 1, 2 or 5 x 10^k; integer_only: step
 * >= 1). Writes up to cap ticks and returns how many; *step gets the spacing. */
int moec_nice_ticks(double lo, double hi, int max_ticks, int integer_only, double *ticks, int cap, double *step);
/* Label for tick value v on an axis whose tick spacing is step (decimals chosen from step; 12000 -> "12k"). */
void moec_tick_label(char *buf, size_t cap, double v, double step);

typedef struct {
    const char *title, *xlabel, *ylabel;   /* any may be NULL */
    double xmin, xmax, ymin, ymax;         /* data range shown (ymin > 0 when log_y) */
    int log_y;
    int x_integer, y_integer;              /* integer tick steps only (step numbers, expert/layer ids) */
    int grid;                              /* draw grid lines at the ticks */
    int right_margin;                      /* pixels right of the plot area; 0: default */
    int legend_corner;                     /* 0 top-right, 1 top-left, 2 bottom-right, 3 bottom-left */
    int x0, y0, x1, y1;                    /* plot area, set by moec_axes_draw */
} moec_axes;

void moec_axes_draw(moec_axes *ax, moec_canvas *c);
double moec_axes_px(const moec_axes *ax, double x);
double moec_axes_py(const moec_axes *ax, double y);
/* Polyline of (x[i], y[i]) in data units, clipped to the plot area; y <= 0 points are skipped when log_y. */
moec_status moec_axes_series(const moec_axes *ax, moec_canvas *c, const double *x, const double *y, size_t n,
                             double width, uint32_t color);
void moec_axes_markers(const moec_axes *ax, moec_canvas *c, const double *x, const double *y, size_t n,
                       double radius, uint32_t color);
/* Legend box in the plot area's corner ax->legend_corner; marker[i] != 0 draws a dot instead of a line sample
 * (marker may be NULL). Wraps into columns when the entries do not fit the plot height. */
void moec_axes_legend(const moec_axes *ax, moec_canvas *c, const char *const *names, const uint32_t *colors,
                      const int *marker, int n);
/* The legend's box for these names at ax->legend_corner: [*x0, *x1) x [*y0, *y1) (to choose a free corner). */
void moec_axes_legend_box(const moec_axes *ax, const char *const *names, int n, int *x0, int *y0, int *x1,
                          int *y1);

/* `moec plot`: reads a metrics.jsonl written during training and writes, into out_dir (created if missing),
 *   loss.png        train loss (raw, and smoothed when long enough) and val_loss vs step
 *   lr.png          learning rate vs step
 *   drop_rate.png   token drop rate vs step, one line per MoE layer
 *   aux_coef.png    auxiliary-loss coefficient alpha vs step, one line per MoE layer
 *   expert_load.png heatmap MoE layer x expert of the routed fraction, averaged over the last 10% of steps
 * Record fields used: step (records without one are ignored), loss, lr, drop_rate[L], aux_coef[L],
 * expert_load[L][E], val_loss. Missing fields and null values are skipped; a chart with no data is not written.
 * A line that is not a JSON object, or a field of the wrong type or shape, is MOEC_ERR_FORMAT naming the line.
 * *n_written (may be NULL) gets the number of PNGs written. */
moec_status moec_plot_metrics(const char *metrics_jsonl, const char *out_dir, int *n_written);

/* House style shared by the canvas helpers (canvas.c) and the metrics charts (plot_metrics.c). */
#define MOEC_PLOT_FONT_SCALE 2
#define MOEC_PLOT_TICK_LEN 5
#define MOEC_PLOT_MAX_TICKS 64
#define MOEC_PLOT_COL_TEXT 0x202020u
#define MOEC_PLOT_COL_AXIS 0x404040u
#define MOEC_PLOT_COL_GRID 0xE4E4E4u
#define MOEC_PLOT_COL_BG 0xFFFFFFu

#endif
