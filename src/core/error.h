/* error.h — moec's one way to report failure.
 *
 * Every library function that can fail returns a moec_status. The failure's text (which file/line of ours
 * detected it, and a one-line human message naming the problem) is kept in a thread-local buffer that the
 * caller reads with moec_error_message(). Library code never calls exit(): under MPI one rank exiting hangs
 * the others, and a server must survive one bad request. Only tools/moec.c decides to end the process.
 *
 * Use:   if (n < 0) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: tensor '%s' has negative size", path, name);
 * MOEC_ERR records the message and evaluates to the status code, so it can be returned directly.
 * Set a breakpoint on moec_error_set to stop wherever any error is first detected.
 */
#ifndef MOEC_ERROR_H
#define MOEC_ERROR_H

typedef enum {
    MOEC_OK = 0,
    MOEC_ERR_ARG,      /* caller passed an invalid argument (bad flag, impossible value) */
    MOEC_ERR_IO,       /* open/read/write/rename/fsync failed */
    MOEC_ERR_FORMAT,   /* a file's contents are malformed, truncated or inconsistent */
    MOEC_ERR_CONFIG,   /* a model/training configuration is impossible or unsupported */
    MOEC_ERR_NOMEM,    /* allocation failed */
    MOEC_ERR_NUMERIC,  /* NaN/Inf where a finite value was required */
} moec_status;

moec_status moec_error_set(moec_status code, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define MOEC_ERR(code, ...) moec_error_set((code), __FILE__, __LINE__, __VA_ARGS__)

/* The message of the most recent error on this thread ("" if none). */
const char *moec_error_message(void);
/* "file.c:123" where the most recent error on this thread was detected. */
const char *moec_error_where(void);
const char *moec_status_name(moec_status s);

/* Propagate a failing status unchanged (the message set at the point of detection is kept). */
#define MOEC_TRY(expr) do { moec_status moec_try_s_ = (expr); if (moec_try_s_ != MOEC_OK) return moec_try_s_; } while (0)

#endif
