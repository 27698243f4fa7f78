/* npy.h — write NumPy .npy arrays (test dumps, debugging: `numpy.load(path)` reads them directly).
 *
 * Format, version 1.0 (numpy.lib.format):
 *   bytes 0-5   magic "\x93NUMPY"
 *   bytes 6-7   major 1, minor 0
 *   bytes 8-9   H, header length, uint16 little-endian
 *   bytes 10..  H bytes of ASCII: a Python dict literal
 *                 {'descr': '<f4', 'fortran_order': False, 'shape': (d0, d1, ...), }
 *               padded with spaces and ended by '\n' so that 10 + H is a multiple of 64
 *   then        the elements, C (row-major) order, little-endian fp32
 */
#ifndef MOEC_IO_NPY_H
#define MOEC_IO_NPY_H

#include <stdint.h>
#include "core/error.h"

/* Write a float32 array of ndim dims (0 = scalar, up to 32) atomically. */
moec_status moec_npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape);

#endif
