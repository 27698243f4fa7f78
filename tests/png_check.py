#!/usr/bin/env python3
"""png_check.py — independent PNG validator for moec's tests (stdlib zlib + struct only).

usage: png_check.py FILE [--size W H] [--pixel X Y R G B]... [--raw RGBFILE] [--has-color R G B] [--not-uniform]
Checks the signature, every chunk's CRC, IHDR (8-bit RGB, no interlace), that IDAT inflates to exactly
H*(1+3W) bytes, undoes the per-row filters, and compares the listed pixels (--raw: every pixel against a file of
H*W*3 bytes). Exit 0 on success, 1 with a message on the first failure.
"""
import struct
import sys
import zlib


def fail(msg):
    print("png_check: " + msg)
    sys.exit(1)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def decode(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail("bad signature")
    pos, chunks = 8, []
    while pos < len(data):
        if pos + 8 > len(data):
            fail("truncated chunk header at %d" % pos)
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        ctype = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + n]
        if len(body) != n or pos + 12 + n > len(data):
            fail("truncated chunk %r" % ctype)
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        if zlib.crc32(ctype + body) & 0xFFFFFFFF != crc:
            fail("CRC mismatch in chunk %r" % ctype)
        chunks.append((ctype, body))
        pos += 12 + n
    if not chunks or chunks[0][0] != b"IHDR" or chunks[-1][0] != b"IEND":
        fail("chunk order must be IHDR ... IEND")
    w, h, depth, ctype, comp, filt, inter = struct.unpack(">IIBBBBB", chunks[0][1])
    if (depth, ctype, comp, filt, inter) != (8, 2, 0, 0, 0):
        fail("unexpected IHDR fields %r" % ((depth, ctype, comp, filt, inter),))
    raw = zlib.decompress(b"".join(b for t, b in chunks if t == b"IDAT"))
    stride = 3 * w
    if len(raw) != h * (stride + 1):
        fail("decompressed %d bytes, expected %d" % (len(raw), h * (stride + 1)))
    img = bytearray(h * stride)
    prev = bytes(stride)  # the row above (zeros above the first row)
    lo7 = int.from_bytes(b"\x7f" * stride, "big")
    hi1 = int.from_bytes(b"\x80" * stride, "big")
    for y in range(h):
        f = raw[y * (stride + 1)]
        src = raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)]
        if f == 0:
            row = bytearray(src)
        elif f == 2:  # Up: bytewise (src + prev) mod 256, done on one big integer without carries between bytes
            a, b = int.from_bytes(src, "big"), int.from_bytes(prev, "big")
            row = bytearray((((a & lo7) + (b & lo7)) ^ ((a ^ b) & hi1)).to_bytes(stride, "big"))
        elif f == 1:
            row = bytearray(src)
            for x in range(3, stride):
                row[x] = (row[x] + row[x - 3]) & 0xFF
        elif f == 3:
            row = bytearray(stride)
            for x in range(stride):
                row[x] = (src[x] + ((row[x - 3] if x >= 3 else 0) + prev[x]) // 2) & 0xFF
        elif f == 4:
            row = bytearray(stride)
            for x in range(stride):
                if x >= 3:
                    row[x] = (src[x] + paeth(row[x - 3], prev[x], prev[x - 3])) & 0xFF
                else:
                    row[x] = (src[x] + prev[x]) & 0xFF  # paeth(0, b, 0) == b
        else:
            fail("bad filter type %d on row %d" % (f, y))
        img[y * stride:(y + 1) * stride] = row
        prev = row
    return w, h, img


def main(argv):
    if len(argv) < 2:
        fail(__doc__.splitlines()[2])
    w, h, img = decode(argv[1])
    i = 2
    while i < len(argv):
        if argv[i] == "--size":
            ew, eh = int(argv[i + 1]), int(argv[i + 2])
            if (w, h) != (ew, eh):
                fail("size %dx%d, expected %dx%d" % (w, h, ew, eh))
            i += 3
        elif argv[i] == "--pixel":
            x, y, r, g, b = (int(v) for v in argv[i + 1:i + 6])
            o = (y * w + x) * 3
            got = tuple(img[o:o + 3])
            if got != (r, g, b):
                fail("pixel (%d,%d) is %r, expected %r" % (x, y, got, (r, g, b)))
            i += 6
        elif argv[i] == "--raw":
            want = open(argv[i + 1], "rb").read()
            if len(want) != len(img):
                fail("%s has %d bytes, the image %d" % (argv[i + 1], len(want), len(img)))
            if bytes(img) != want:
                diff = next(k for k in range(len(img)) if img[k] != want[k])
                fail("decoded pixels differ from %s (first differing byte %d)" % (argv[i + 1], diff))
            i += 2
        elif argv[i] == "--has-color":
            want = bytes(int(v) for v in argv[i + 1:i + 4])
            if not any(img[k:k + 3] == want for k in range(0, len(img), 3)):
                fail("no pixel has colour %r" % (tuple(want),))
            i += 4
        elif argv[i] == "--not-uniform":
            if len(set(bytes(img[k:k + 3]) for k in range(0, len(img), 3 * 97))) < 3:
                fail("image has fewer than 3 distinct colours")
            i += 1
        else:
            fail("unknown option %s" % argv[i])
    print("png_check: ok %s %dx%d" % (argv[1], w, h))


if __name__ == "__main__":
    main(sys.argv)
