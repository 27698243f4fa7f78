/* npy.c — NumPy .npy v1.0 writer; format in npy.h. */
#include "io/npy.h"

#include <stdio.h>
#include <string.h>

#include "io/fsutil.h"

#define NPY_MAX_DIMS 32 /* NumPy's own limit */

moec_status moec_npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > NPY_MAX_DIMS || (ndim > 0 && !shape))
        return MOEC_ERR(MOEC_ERR_ARG, "%s: cannot write a .npy array of %d dimensions", path, ndim);
    /* Header dict; a 1-tuple needs its trailing comma, "(5,)", to be a tuple in Python. */
    char dict[1024];
    int len = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return MOEC_ERR(MOEC_ERR_ARG, "%s: negative dimension %lld", path, (long long)shape[i]);
        if (__builtin_mul_overflow(numel, (uint64_t)shape[i], &numel) || numel > SIZE_MAX / sizeof(float))
            return MOEC_ERR(MOEC_ERR_ARG, "%s: array size overflows", path);
        len += snprintf(dict + len, sizeof dict - (size_t)len, "%lld%s", (long long)shape[i],
                        ndim == 1 ? "," : (i + 1 < ndim ? ", " : ""));
    }
    len += snprintf(dict + len, sizeof dict - (size_t)len, "), }");
    /* Pad with spaces plus a final '\n' so the data begins at a multiple of 64 bytes (lets NumPy mmap it aligned). */
    size_t total = (10 + (size_t)len + 1 + 63) / 64 * 64;
    size_t hlen = total - 10;
    char hdr[1024 + 128];
    memcpy(hdr, "\x93NUMPY\x01\x00", 8);
    hdr[8] = (char)(hlen & 0xff);
    hdr[9] = (char)(hlen >> 8);
    memcpy(hdr + 10, dict, (size_t)len);
    memset(hdr + 10 + len, ' ', hlen - (size_t)len - 1);
    hdr[total - 1] = '\n';
    size_t nbytes = (size_t)numel * sizeof(float);
    if (nbytes > 0 && !data) return MOEC_ERR(MOEC_ERR_ARG, "%s: NULL data for %zu bytes", path, nbytes);
    moec_atomic_file *f;
    MOEC_TRY(moec_atomic_open(&f, path));
    moec_status s = moec_atomic_write(f, hdr, total);
    if (s == MOEC_OK) s = moec_atomic_write(f, data, nbytes);
    if (s != MOEC_OK) {
        moec_atomic_abort(f);
        return s;
    }
    return moec_atomic_commit(f);
}
