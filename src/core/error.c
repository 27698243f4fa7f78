/* error.c — thread-local last-error record behind MOEC_ERR (see error.h). */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char error_message[1024];
static _Thread_local char error_where[256];

moec_status moec_error_set(moec_status code, const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_message, sizeof error_message, fmt, ap);
    va_end(ap);
    const char *base = strrchr(file, '/');
    snprintf(error_where, sizeof error_where, "%s:%d", base ? base + 1 : file, line);
    return code;
}

const char *moec_error_message(void) { return error_message; }
const char *moec_error_where(void) { return error_where; }

const char *moec_status_name(moec_status s) {
    switch (s) {
    case MOEC_OK: return "ok";
    case MOEC_ERR_ARG: return "invalid argument";
    case MOEC_ERR_IO: return "I/O error";
    case MOEC_ERR_FORMAT: return "malformed input";
    case MOEC_ERR_CONFIG: return "invalid configuration";
    case MOEC_ERR_NOMEM: return "out of memory";
    case MOEC_ERR_NUMERIC: return "non-finite value";
    }
    return "unknown error";
}
