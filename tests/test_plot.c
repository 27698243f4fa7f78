/* test_plot.c — PNG encoder, canvas/axes, `moec plot`, metrics.jsonl writer, JSON record builder, progress line.
 *
 * PNGs are checked by an independent decoder (tests/png_check.py: Python's zlib + struct), not by our own code.
 * Run from the repository root (or anywhere: the checker is found next to this source file).
 * MOEC_KEEP_PLOTS=1 keeps the temporary directory with the generated charts and prints its path.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/png.h"
#include "train/font5x7.h"
#include "train/metrics.h"
#include "train/plot.h"

static int n_pass, n_fail;

static void check(int ok, const char *what) {
    printf("%s - %s\n", ok ? "ok  " : "FAIL", what);
    if (ok) n_pass++;
    else n_fail++;
}

static char tmpdir[] = "/tmp/moec_test_plot.XXXXXX";
static char checker[1024];

static void find_checker(void) {
    const char *src = __FILE__;
    const char *slash = strrchr(src, '/');
    snprintf(checker, sizeof checker, "%.*s/png_check.py", slash ? (int)(slash - src) : 1, slash ? src : ".");
    if (access(checker, R_OK) != 0) snprintf(checker, sizeof checker, "tests/png_check.py");
}

/* Runs png_check.py on path with extra arguments; 1 if it accepts the file. */
static int png_ok(const char *path, const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "python3 %s %s %s", checker, path, args ? args : "");
    fflush(stdout);
    return system(cmd) == 0;
}

static char *path_in(const char *name) {
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) { free(s); s = NULL; }
    if (s) s[n] = 0;
    fclose(f);
    return s;
}

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return 0;
    fputs(text, f);
    return fclose(f) == 0;
}

/* ---------- font ---------- */

static void test_font(void) {
    int good = 1;
    for (int i = 0; i <= MOEC_FONT_LAST - MOEC_FONT_FIRST; i++) {
        const char *g = moec_font5x7[i];
        if (strlen(g) != MOEC_FONT_W * MOEC_FONT_H || strspn(g, "#.") != strlen(g)) good = 0;
        if (i > 0 && !strchr(g, '#')) good = 0; /* every glyph but space has ink */
    }
    check(good, "font: 95 glyphs of 5x7 '#'/'.' cells, all but space inked");
    int distinct = 1;
    for (int i = 0; i <= MOEC_FONT_LAST - MOEC_FONT_FIRST; i++)
        for (int j = i + 1; j <= MOEC_FONT_LAST - MOEC_FONT_FIRST; j++)
            if (strcmp(moec_font5x7[i], moec_font5x7[j]) == 0) distinct = 0;
    check(distinct, "font: all glyphs distinct");
    check(moec_text_width("abc", 2) == (3 * 6 - 1) * 2 && moec_text_width("", 2) == 0, "font: text width");
}

/* ---------- PNG ---------- */

static void test_png(void) {
    check(moec_crc32(0, (const uint8_t *)"123456789", 9) == 0xCBF43926u, "crc32 check value of \"123456789\"");
    check(moec_crc32(moec_crc32(0, (const uint8_t *)"1234", 4), (const uint8_t *)"56789", 5) == 0xCBF43926u,
          "crc32 continues across calls");

    /* gradient + flat block + noise: exercises all filters, literals and long matches */
    int w = 173, h = 91;
    uint8_t *img = malloc((size_t)w * h * 3);
    uint32_t rng = 12345;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = img + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)(x * 3); p[1] = (uint8_t)(y * 2); p[2] = (uint8_t)(x ^ y);
            if (x > 100) p[0] = p[1] = p[2] = 250;
            if (y > 60) { rng = rng * 1103515245u + 12345u; p[0] = (uint8_t)(rng >> 16); p[1] = (uint8_t)(rng >> 8); }
        }
    char *png = path_in("pattern.png"), *raw = path_in("pattern.rgb");
    FILE *f = fopen(raw, "wb");
    fwrite(img, 1, (size_t)w * h * 3, f);
    fclose(f);
    moec_status s = moec_png_write(png, img, w, h);
    check(s == MOEC_OK, "png: write pattern image");
    char args[512];
    const uint8_t *q = img + ((size_t)10 * w + 7) * 3;
    snprintf(args, sizeof args, "--size %d %d --raw %s --pixel 7 10 %d %d %d --pixel 120 5 250 250 250", w, h, raw,
             q[0], q[1], q[2]);
    check(png_ok(png, args), "png: independent decoder: signature, CRCs, IHDR, size, every pixel equal");
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", png);
    check(access(tmp, F_OK) != 0, "png: no .tmp left behind after atomic write");
    free(img);

    uint8_t one[3] = {1, 2, 3};
    check(moec_png_write(path_in("one.png"), one, 1, 1) == MOEC_OK &&
              png_ok(path_in("one.png"), "--size 1 1 --pixel 0 0 1 2 3"),
          "png: 1x1 image");

    /* flat 800x500 compresses well with the fixed-Huffman LZ77 encoder */
    uint8_t *flat = malloc(800 * 500 * 3);
    memset(flat, 0xF7, 800 * 500 * 3);
    uint8_t *enc = NULL;
    size_t enc_len = 0;
    s = moec_png_encode(flat, 800, 500, &enc, &enc_len);
    printf("     flat 800x500 RGB encodes to %zu bytes (raw %d)\n", enc_len, 800 * 500 * 3);
    check(s == MOEC_OK && enc_len < 20000, "png: flat 800x500 image compresses to < 20 kB");
    free(enc);
    free(flat);

    check(moec_png_write("/nonexistent-dir/x.png", one, 1, 1) == MOEC_ERR_IO && strstr(moec_error_message(), "open"),
          "png: unwritable path -> MOEC_ERR_IO naming the call");
    check(moec_png_encode(one, 0, 1, &enc, &enc_len) == MOEC_ERR_ARG, "png: zero width -> MOEC_ERR_ARG");
}

/* ---------- canvas, ticks ---------- */

static void test_canvas(void) {
    moec_canvas c;
    check(moec_canvas_init(&c, 120, 80, MOEC_RGB(255, 255, 255)) == MOEC_OK, "canvas: init");
    moec_canvas_rect(&c, 10, 10, 30, 20, MOEC_RGB(200, 0, 0));
    moec_canvas_line(&c, 40, 60.5, 110, 60.5, 3, MOEC_RGB(0, 0, 255)); /* horizontal, 3 px thick around y=60.5 */
    moec_canvas_text(&c, 50, 5, "A", 2, MOEC_RGB(0, 0, 0));             /* 'A' top row ".###.": col 1 inked */
    moec_canvas_clip(&c, 0, 0, 60, 80);
    moec_canvas_rect(&c, 0, 70, 120, 80, MOEC_RGB(0, 128, 0)); /* only x < 60 drawn */
    moec_canvas_unclip(&c);
    /* rotated 'I': glyph row 0 ".###." -> column x=100, cols 1..3 -> y 38..36; row 1 "..#.." -> (101, 37) */
    moec_canvas_text_up(&c, 100, 40, "I", 1, MOEC_RGB(0, 0, 0));
    check(moec_canvas_write_png(&c, path_in("canvas.png")) == MOEC_OK, "canvas: write png");
    check(png_ok(path_in("canvas.png"),
                 "--size 120 80 --pixel 10 10 200 0 0 --pixel 29 19 200 0 0 --pixel 30 20 255 255 255 "
                 "--pixel 70 60 0 0 255 --pixel 70 58 255 255 255 "
                 "--pixel 52 5 0 0 0 --pixel 51 5 255 255 255 --pixel 59 75 0 128 0 --pixel 60 75 255 255 255 "
                 "--pixel 100 38 0 0 0 --pixel 100 36 0 0 0 --pixel 100 39 255 255 255 --pixel 100 35 255 255 255 "
                 "--pixel 101 37 0 0 0 --pixel 101 38 255 255 255"),
          "canvas: rect, antialiased line core, text, clip, rotated text at expected pixels");
    moec_canvas_free(&c);

    double t[32], step;
    int n = moec_nice_ticks(0, 1, 6, 0, t, 32, &step);
    check(n == 6 && fabs(step - 0.2) < 1e-12 && t[0] == 0 && fabs(t[5] - 1) < 1e-12, "ticks: [0,1] -> 0, 0.2 .. 1");
    n = moec_nice_ticks(3, 47, 7, 1, t, 32, &step);
    check(n >= 4 && step == 10 && t[0] == 10 && t[n - 1] == 40, "ticks: [3,47] -> 10, 20, 30, 40");
    n = moec_nice_ticks(0, 3, 9, 1, t, 32, &step);
    check(n == 4 && step == 1, "ticks: integer axis never steps below 1");
    char b[32];
    moec_tick_label(b, sizeof b, 12000, 2000);
    int ok = strcmp(b, "12k") == 0;
    moec_tick_label(b, sizeof b, 0.0003, 0.0001);
    ok = ok && strcmp(b, "0.0003") == 0;
    moec_tick_label(b, sizeof b, 2.5, 0.5);
    ok = ok && strcmp(b, "2.5") == 0;
    moec_tick_label(b, sizeof b, -1e-17, 0.1);
    ok = ok && strcmp(b, "0.0") == 0;
    check(ok, "ticks: labels 12k, 0.0003, 2.5, 0.0 (no -0)");
    check(moec_colormap(0) == MOEC_RGB(68, 1, 84) && moec_colormap(1) == MOEC_RGB(253, 231, 37) &&
          moec_colormap(NAN) == MOEC_RGB(68, 1, 84), "colormap: endpoints, NaN clamps");
}

/* ---------- moec plot ---------- */

static void write_synthetic(const char *path, int steps, int L, int E) {
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"run\":\"synthetic\",\"note\":\"header records without a step are ignored\"}\n\n");
    moec_jsonbuf jb = {0};
    for (int s = 1; s <= steps; s++) {
        moec_jsonl_begin(&jb);
        moec_jsonl_int(&jb, "step", s);
        double loss = 2.0 + 8.0 * exp(-s / 40.0) + 0.15 * sin(s * 1.7);
        moec_jsonl_num(&jb, "loss", s == 17 ? NAN : loss); /* written as null, skipped */
        double lr = s < 20 ? 1e-3 * s / 20 : 1e-3 * (0.1 + 0.9 * 0.5 * (1 + cos(M_PI * (s - 20) / (steps - 20))));
        moec_jsonl_num(&jb, "lr", lr);
        moec_jsonl_num(&jb, "grad_norm", 1.0 / (1 + s * 0.01));
        moec_jsonl_num(&jb, "tokens_per_s", 5000 + s);
        double drop[16], aux[16], mm[16], load[16 * 64];
        for (int l = 0; l < L; l++) {
            drop[l] = 0.02 * (l + 1) * exp(-s / 80.0);
            aux[l] = 1e-3 * (1 + l) * (1 + 0.5 * sin(s / 30.0 + l));
            mm[l] = 1.5 + 0.1 * l;
            double sum = 0;
            for (int e = 0; e < E; e++) {
                /* early: layer l prefers expert l; late: expert (E-1-l); total per row 1 */
                double pref = s > steps * 0.9 ? E - 1 - l : l;
                load[l * E + e] = 1 + 3 * exp(-(e - pref) * (e - pref));
                sum += load[l * E + e];
            }
            for (int e = 0; e < E; e++) load[l * E + e] /= sum;
        }
        moec_jsonl_num_list(&jb, "drop_rate", drop, (size_t)L);
        moec_jsonl_num_list(&jb, "aux_coef", aux, (size_t)L);
        moec_jsonl_num_matrix(&jb, "expert_load", load, (size_t)L, (size_t)E);
        moec_jsonl_num_list(&jb, "max1_max2", mm, (size_t)L);
        moec_jsonl_end(&jb);
        fprintf(f, "%s\n", jb.data);
        if (s % 50 == 0) {
            moec_jsonl_begin(&jb);
            moec_jsonl_int(&jb, "step", s);
            moec_jsonl_num(&jb, "val_loss", loss + 0.1);
            moec_jsonl_num(&jb, "val_ppl", exp(loss + 0.1));
            moec_jsonl_end(&jb);
            fprintf(f, "%s\n", jb.data);
        }
    }
    moec_jsonbuf_free(&jb);
    fclose(f);
}

static void test_plot_metrics(void) {
    const char *jsonl = path_in("metrics.jsonl");
    write_synthetic(jsonl, 400, 6, 16);
    int n = -1;
    moec_status s = moec_plot_metrics(jsonl, path_in("plots"), &n);
    if (s != MOEC_OK) printf("     error: %s\n", moec_error_message());
    check(s == MOEC_OK && n == 5, "plot_metrics: synthetic run -> 5 charts");
    const char *names[5] = {"loss.png", "lr.png", "drop_rate.png", "aux_coef.png", "expert_load.png"};
    for (int i = 0; i < 5; i++) {
        char rel[64], what[128];
        snprintf(rel, sizeof rel, "plots/%s", names[i]);
        snprintf(what, sizeof what, "plot_metrics: %s is a valid 800x500 PNG with content", names[i]);
        check(png_ok(path_in(rel), "--size 800 500 --not-uniform"), what);
    }
    /* the heatmap's maximum cell uses the top of the colour map */
    check(png_ok(path_in("plots/expert_load.png"), "--has-color 253 231 37"), "plot_metrics: heatmap spans colour map");

    /* only some fields present: charts without data are not written */
    write_text(path_in("partial.jsonl"), "{\"step\":1,\"loss\":3.0}\n{\"step\":2,\"loss\":2.5,\"lr\":null}\n");
    s = moec_plot_metrics(path_in("partial.jsonl"), path_in("partial"), &n);
    check(s == MOEC_OK && n == 1 && access(path_in("partial/loss.png"), F_OK) == 0 &&
          access(path_in("partial/lr.png"), F_OK) != 0, "plot_metrics: missing fields skipped (loss only -> 1 chart)");

    /* one point per series must not break range computation */
    write_text(path_in("single.jsonl"), "{\"step\":5,\"loss\":3.0,\"lr\":0.001,\"drop_rate\":[0],"
                                        "\"aux_coef\":[0.01],\"expert_load\":[[0.5,0.5]]}\n");
    s = moec_plot_metrics(path_in("single.jsonl"), path_in("single"), &n);
    check(s == MOEC_OK && n == 5 && png_ok(path_in("single/expert_load.png"), "--size 800 500"),
          "plot_metrics: single record -> 5 charts");

    write_text(path_in("bad.jsonl"), "{\"step\":1,\"loss\":3.0}\n{\"step\":2,\"loss\":2.9}\n{\"step\":3,\"loss\": \n");
    s = moec_plot_metrics(path_in("bad.jsonl"), path_in("bad"), &n);
    printf("     error: %s\n", moec_error_message());
    check(s == MOEC_ERR_FORMAT && strstr(moec_error_message(), "bad.jsonl:3:"),
          "plot_metrics: truncated JSON -> MOEC_ERR_FORMAT naming line 3");

    write_text(path_in("badtype.jsonl"), "{\"step\":1,\"loss\":\"high\"}\n");
    s = moec_plot_metrics(path_in("badtype.jsonl"), path_in("bad"), &n);
    check(s == MOEC_ERR_FORMAT && strstr(moec_error_message(), ":1:") && strstr(moec_error_message(), "loss"),
          "plot_metrics: string loss -> MOEC_ERR_FORMAT naming line and field");

    write_text(path_in("badshape.jsonl"), "{\"step\":1,\"expert_load\":[[0.5,0.5]]}\n"
                                          "{\"step\":2,\"expert_load\":[[0.2,0.3,0.5]]}\n");
    s = moec_plot_metrics(path_in("badshape.jsonl"), path_in("bad"), &n);
    check(s == MOEC_ERR_FORMAT && strstr(moec_error_message(), ":2:"),
          "plot_metrics: expert_load shape change -> MOEC_ERR_FORMAT naming line 2");

    write_text(path_in("array.jsonl"), "[1,2,3]\n");
    check(moec_plot_metrics(path_in("array.jsonl"), path_in("bad"), &n) == MOEC_ERR_FORMAT,
          "plot_metrics: non-object line -> MOEC_ERR_FORMAT");
    check(moec_plot_metrics(path_in("missing.jsonl"), path_in("bad"), &n) == MOEC_ERR_IO,
          "plot_metrics: missing file -> MOEC_ERR_IO");
}

/* ---------- JSON record builder and metrics.jsonl ---------- */

static int num_eq(const cJSON *it, double want) {
    if (!isfinite(want)) return cJSON_IsNull(it);
    return cJSON_IsNumber(it) && it->valuedouble == want;
}

static void test_jsonl(void) {
    moec_jsonbuf jb = {0};
    double nums[5] = {0.1, -2.5e-7, 1.0 / 3.0, NAN, INFINITY};
    int64_t ints[3] = {-1, 0, 9007199254740991LL};
    double mat[2 * 3] = {0.125, 0.25, 0.625, 1e300, -0.0, -INFINITY};
    moec_jsonl_begin(&jb);
    moec_jsonl_int(&jb, "step", 123456789012LL);
    moec_jsonl_num(&jb, "loss", 3.141592653589793);
    moec_jsonl_num(&jb, "nan", NAN);
    moec_jsonl_str(&jb, "name", "quote\" back\\slash\nnewline\ttab\x01 ctl \xc3\xa9");
    moec_jsonl_str(&jb, "none", NULL);
    moec_jsonl_num_list(&jb, "nums", nums, 5);
    moec_jsonl_int_list(&jb, "ints", ints, 3);
    moec_jsonl_num_matrix(&jb, "mat", mat, 2, 3);
    moec_jsonl_num_list(&jb, "empty", NULL, 0);
    check(moec_jsonl_end(&jb) == MOEC_OK, "jsonl: build record");
    printf("     %s\n", jb.data);
    check(strchr(jb.data, '\n') == NULL && strlen(jb.data) == jb.len, "jsonl: one line, NUL-terminated");
    cJSON *o = cJSON_Parse(jb.data);
    check(o && cJSON_IsObject(o), "jsonl: cJSON parses the record");
    if (o) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, "step");
        check(it && it->valuedouble == 123456789012.0, "jsonl: int");
        check(num_eq(cJSON_GetObjectItemCaseSensitive(o, "loss"), 3.141592653589793), "jsonl: double round-trips");
        check(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "nan")), "jsonl: NaN -> null");
        it = cJSON_GetObjectItemCaseSensitive(o, "name");
        check(cJSON_IsString(it) && strcmp(it->valuestring, "quote\" back\\slash\nnewline\ttab\x01 ctl \xc3\xa9") == 0,
              "jsonl: string escapes round-trip");
        check(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "none")), "jsonl: NULL string -> null");
        it = cJSON_GetObjectItemCaseSensitive(o, "nums");
        int ok = cJSON_GetArraySize(it) == 5;
        for (int i = 0; ok && i < 5; i++) ok = num_eq(cJSON_GetArrayItem(it, i), nums[i]);
        check(ok, "jsonl: number list equal, NaN/Inf -> null");
        it = cJSON_GetObjectItemCaseSensitive(o, "ints");
        ok = cJSON_GetArraySize(it) == 3;
        for (int i = 0; ok && i < 3; i++) ok = cJSON_GetArrayItem(it, i)->valuedouble == (double)ints[i];
        check(ok, "jsonl: int list equal");
        it = cJSON_GetObjectItemCaseSensitive(o, "mat");
        ok = cJSON_GetArraySize(it) == 2;
        for (int r = 0; ok && r < 2; r++) {
            const cJSON *row = cJSON_GetArrayItem(it, r);
            ok = cJSON_GetArraySize(row) == 3;
            for (int c = 0; ok && c < 3; c++) ok = num_eq(cJSON_GetArrayItem(row, c), mat[r * 3 + c]);
        }
        check(ok, "jsonl: matrix is a list of rows, values equal");
        it = cJSON_GetObjectItemCaseSensitive(o, "empty");
        check(cJSON_IsArray(it) && cJSON_GetArraySize(it) == 0, "jsonl: empty list");
    }
    cJSON_Delete(o);
    size_t cap = jb.cap;
    moec_jsonl_begin(&jb);
    moec_jsonl_int(&jb, "step", 2);
    moec_jsonl_end(&jb);
    check(strcmp(jb.data, "{\"step\":2}") == 0 && jb.cap == cap, "jsonl: buffer reused for the next record");

    moec_metrics *m = NULL;
    const char *mp = path_in("m.jsonl");
    int ok = moec_metrics_open(&m, mp, 0) == MOEC_OK;
    ok = ok && moec_metrics_write(m, jb.data) == MOEC_OK && moec_metrics_write(m, "{\"step\":3}") == MOEC_OK;
    char *mid = slurp(mp); /* flushed per line: visible before close */
    check(ok && mid && strcmp(mid, "{\"step\":2}\n{\"step\":3}\n") == 0, "metrics: lines visible before close");
    free(mid);
    check(moec_metrics_write(m, "{\"a\":1}\n{\"b\":2}") == MOEC_ERR_ARG, "metrics: embedded newline -> MOEC_ERR_ARG");
    check(moec_metrics_close(m) == MOEC_OK, "metrics: close");
    ok = moec_metrics_open(&m, mp, 1) == MOEC_OK && moec_metrics_write(m, "{\"step\":4}") == MOEC_OK;
    ok = moec_metrics_close(m) == MOEC_OK && ok;
    char *all = slurp(mp);
    check(ok && all && strcmp(all, "{\"step\":2}\n{\"step\":3}\n{\"step\":4}\n") == 0,
          "metrics: append mode keeps lines");
    free(all);
    ok = moec_metrics_open(&m, mp, 0) == MOEC_OK;
    ok = moec_metrics_close(m) == MOEC_OK && ok;
    all = slurp(mp);
    check(ok && all && all[0] == 0, "metrics: truncate mode empties file");
    free(all);
    check(moec_metrics_open(&m, "/nonexistent-dir/m.jsonl", 0) == MOEC_ERR_IO && m == NULL,
          "metrics: unwritable path -> MOEC_ERR_IO");
    check(moec_metrics_close(NULL) == MOEC_OK, "metrics: close(NULL) is a no-op");
    moec_jsonbuf_free(&jb);
}

/* ---------- progress ---------- */

static void test_progress(void) {
    FILE *f = tmpfile();
    moec_progress p;
    moec_progress_begin(&p, "train", 1000, f);
    check(p.tty == 0, "progress: a file is not a TTY");
    char sfx[32];
    for (int i = 1; i <= 1000; i++) {
        snprintf(sfx, sizeof sfx, "loss %.2f", 10.0 / i);
        moec_progress_update(&p, i, sfx);
    }
    moec_progress_end(&p);
    long n = ftell(f);
    rewind(f);
    char *buf = calloc(1, (size_t)n + 1);
    check(fread(buf, 1, (size_t)n, f) == (size_t)n, "progress: read back");
    fclose(f);
    int lines = 0;
    for (char *c = buf; *c; c++) lines += *c == '\n';
    char *last = buf + strlen(buf) - 1;
    while (last > buf && last[-1] != '\n') last--;
    printf("     last line: %s", last);
    check(!strchr(buf, '\r') && !strchr(buf, '\033'), "progress: no carriage returns or escapes when not a TTY");
    check(lines >= 10 && lines <= 12, "progress: one plain line per 10% (+ final)");
    check(strstr(buf, "100% 1000/1000") && strstr(buf, "| loss 0.01") && strstr(buf, " 50% 500/1000"),
          "progress: lines carry percentage, counts, suffix");
    free(buf);

    f = tmpfile();
    moec_progress_begin(&p, "eval", 1000, f);
    p.tty = 1; /* as on a terminal */
    moec_progress_update(&p, 450, "loss 3.2");
    moec_progress_update(&p, 451, "loss 3.1"); /* within 0.1 s: not redrawn */
    moec_progress_end(&p);
    n = ftell(f);
    rewind(f);
    buf = calloc(1, (size_t)n + 1);
    check(fread(buf, 1, (size_t)n, f) == (size_t)n, "progress: read back (tty)");
    fclose(f);
    printf("     tty output: ");
    for (char *c = buf; *c; c++) putchar(*c == '\r' ? '|' : *c == '\033' ? '^' : *c);
    int redraws = 0;
    for (char *c = buf; *c; c++) redraws += *c == '\r';
    check(buf[0] == '\r' && strstr(buf, "\reval [#############.................]  45% 450/1000 | loss 3.2\033[K\r") &&
          redraws == 2 && strstr(buf, "451/1000 in 0:00 | loss 3.1\033[K\n") &&
          buf[strlen(buf) - 1] == '\n',
          "progress: TTY line redrawn with \\r, bar, rate limit, final newline");
    free(buf);
}

int main(void) {
    find_checker();
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_font();
    test_png();
    test_canvas();
    test_jsonl();
    test_progress();
    test_plot_metrics();
    if (getenv("MOEC_KEEP_PLOTS")) {
        printf("     outputs kept in %s\n", tmpdir);
    } else {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) printf("     could not remove %s\n", tmpdir);
    }
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
