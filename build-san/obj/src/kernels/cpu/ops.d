build-san/obj/src/kernels/cpu/ops.o: src/kernels/cpu/ops.c \
 src/kernels/cpu/ops.h src/core/threads.h src/core/error.h
src/kernels/cpu/ops.h:
src/core/threads.h:
src/core/error.h:
