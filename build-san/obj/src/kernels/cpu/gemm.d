build-san/obj/src/kernels/cpu/gemm.o: src/kernels/cpu/gemm.c \
 src/kernels/cpu/gemm.h src/core/error.h src/core/threads.h
src/kernels/cpu/gemm.h:
src/core/error.h:
src/core/threads.h:
