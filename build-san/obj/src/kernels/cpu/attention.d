build-san/obj/src/kernels/cpu/attention.o: src/kernels/cpu/attention.c \
 src/kernels/cpu/attention.h src/core/threads.h src/core/error.h
src/kernels/cpu/attention.h:
src/core/threads.h:
src/core/error.h:
