"""dtype_oracle.py — PyTorch's float conversions as an oracle for src/core/dtype.c (used by tests/test_dtype.c).

Usage: dtype_oracle.py IN.f32 OUT.bin
Reads little-endian float32 values and writes, for each, PyTorch's bf16 bits (uint16), f16 bits (uint16) and
float8_e4m3fn bits (uint8) as three consecutive arrays. PyTorch rounds to nearest even in every case; its E4M3
conversion does not saturate (out-of-range values become NaN), so the caller compares E4M3 only within range.
"""
import sys

import numpy as np
import torch

x = torch.from_numpy(np.fromfile(sys.argv[1], dtype="<f4"))
bf16 = x.to(torch.bfloat16).view(torch.int16).numpy().astype("<u2")
f16 = x.to(torch.float16).view(torch.int16).numpy().astype("<u2")
e4m3 = x.to(torch.float8_e4m3fn).view(torch.uint8).numpy().astype("u1")
with open(sys.argv[2], "wb") as f:
    f.write(bf16.tobytes())
    f.write(f16.tobytes())
    f.write(e4m3.tobytes())
