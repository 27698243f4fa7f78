/* test_check.h — the pass/fail bookkeeping of the C tests that print one line per check (header-only: each test
 * is one translation unit). check(ok, fmt, ...) prints "ok   <what>" or "FAIL <what>" and counts; a test ends
 * with printf("%d passed, %d failed\n", passed, failed) and returns failed != 0. */
#ifndef MOEC_TEST_CHECK_H
#define MOEC_TEST_CHECK_H

#include <stdarg.h>
#include <stdio.h>

static int passed, failed;

static void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (ok) passed++;
    else failed++;
}

#endif
