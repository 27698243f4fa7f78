/* qmatmul_f8_rows.h — how a range of E4M3 weight rows is cut into decode tiles, written once for the two
 * instruction sets.
 *
 * Included by qmatmul_avx2.c and qmatmul_avx512.c after their own TARGET, INLINE and f8_tile (the tile of R weight
 * rows, rstep rows apart, against NT input rows: the part that differs between the instruction sets); each gets
 * its own static f8_tiles and dot_f8 around its f8_tile.
 */
#if !defined(TARGET) || !defined(INLINE)
#error "define TARGET and INLINE (and f8_tile) before including qmatmul_f8_rows.h"
#endif

/* All T input rows against R weight rows (rstep rows apart), in blocks of up to 2 input rows. */
TARGET INLINE void f8_tiles(int R, const moec_qmat *W, int64_t o0, int64_t rstep, const float *X, int64_t ldx,
                            int64_t T, float *Y, int64_t ldy, const float *post, size_t ahead) {
    int64_t t0 = 0;
    for (; t0 + 2 <= T; t0 += 2)
        f8_tile(R, 2, W, o0, rstep, X + t0 * ldx, ldx, Y + t0 * ldy, ldy, post + t0, ahead);
    if (t0 < T) f8_tile(R, 1, W, o0, rstep, X + t0 * ldx, ldx, Y + t0 * ldy, ldy, post + t0, ahead);
}

/* Weight rows o0 .. o1-1: in four streams where qmat_f8_streams says so (then no software prefetch: the hardware
 * follows four sequential streams), else in tiles of adjacent rows with the rows `ahead` bytes on prefetched; the
 * last rows one by one. */
TARGET static void dot_f8(const moec_qmat *W, int64_t o0, int64_t o1, const float *X, int64_t ldx, int64_t T,
                          float *Y, int64_t ldy, const float *post) {
    const size_t ahead = qmat_f8_prefetch_ahead(W->cols);
    const int64_t q = qmat_f8_streams(W, o1 - o0);
    int64_t o = o0;
    if (q > 0) { /* the tile's rows o + j, o + q + j, o + 2q + j, o + 3q + j */
        for (int64_t j = 0; j < q; j++) f8_tiles(QMAT_DECODE_ROWS, W, o + j, q, X, ldx, T, Y + o + j, ldy, post, 0);
        o += QMAT_DECODE_ROWS * q;
    }
    for (; o + QMAT_DECODE_ROWS <= o1; o += QMAT_DECODE_ROWS)
        f8_tiles(QMAT_DECODE_ROWS, W, o, 1, X, ldx, T, Y + o, ldy, post, ahead);
    for (; o < o1; o++) f8_tiles(1, W, o, 1, X, ldx, T, Y + o, ldy, post, ahead);
}
