build-san/obj/src/model/ffn.o: src/model/ffn.c src/model/ffn.h \
 src/kernels/cpu/gemm.h src/core/error.h src/kernels/cpu/ops.h
src/model/ffn.h:
src/kernels/cpu/gemm.h:
src/core/error.h:
src/kernels/cpu/ops.h:
