/* stop.h — stop strings for streamed text generation.
 *
 * The generator feeds each new token's bytes as they come; the matcher hands back the bytes that are safe to
 * show now and says when a stop string has appeared. Rules:
 *   - Generation stops at the first stop string to be completed, i.e. the occurrence that ENDS earliest in the
 *     text (ties: the one that starts earliest); the text before it is emitted, the stop string and everything
 *     after it never are. That is the only rule a stream can follow without reading ahead, and it makes the
 *     result independent of how the text is cut into tokens: with stops "abcd" and "bc", text "abcd" stops
 *     after "a" (because "bc" completes first).
 *   - Bytes that could still be the start of a stop string (a suffix of the text so far that is a proper prefix
 *     of some stop string) are held back until the next bytes decide; everything before them is emitted.
 *   - An incomplete UTF-8 sequence at the end of what could be emitted is held back too (a byte-fallback token
 *     can end inside a character), so each emitted piece is whole characters when the text is valid UTF-8.
 *     Bytes that are not valid UTF-8 (a lead byte followed by a non-continuation byte, a stray continuation
 *     byte) are emitted as they are.
 *   - moec_stop_flush at the end of generation emits whatever is held back.
 * Stop strings are matched as bytes. At most MOEC_STOP_MAX of them, each non-empty; none is fine (then only
 * the UTF-8 rule applies).
 *
 * Cost: the held-back text is shorter than the longest stop string plus 3 bytes, so each feed costs
 * O((held + new bytes) x total stop length). The matcher keeps its own copies of the stop strings.
 */
#ifndef MOEC_INFER_STOP_H
#define MOEC_INFER_STOP_H

#include <stddef.h>
#include "core/error.h"

#define MOEC_STOP_MAX 16

typedef struct {
    char *stops[MOEC_STOP_MAX];
    size_t stop_len[MOEC_STOP_MAX];
    int n_stops;
    char *buf;         /* buf[0..len): emitted last call (the first `emitted` bytes), then held-back bytes */
    size_t len, cap, emitted;
    int stopped;
} moec_stop;

/* Copies stops[0..n). Errors (MOEC_ERR_ARG): n < 0 or > MOEC_STOP_MAX, a NULL or empty stop string. */
moec_status moec_stop_init(moec_stop *m, const char *const *stops, int n);

/* Feed the next bytes[0..n). *emit / *emit_len: the bytes to show now (pointer into the matcher, valid until
 * the next call on it). *stopped = 1 once a stop string has been completed (in this call or before; after that
 * nothing more is ever emitted and the generator should end). */
moec_status moec_stop_feed(moec_stop *m, const char *bytes, size_t n, const char **emit, size_t *emit_len,
                           int *stopped);

/* End of generation without a stop: emit everything held back (nothing if stopped). */
void moec_stop_flush(moec_stop *m, const char **emit, size_t *emit_len);

void moec_stop_free(moec_stop *m);

#endif
