build-san/obj/src/moe/moe_layer.o: src/moe/moe_layer.c \
 src/moe/moe_layer.h src/model/config.h src/core/error.h \
 src/model/params.h src/moe/router.h src/core/threads.h \
 src/kernels/cpu/gemm.h src/model/ffn.h
src/moe/moe_layer.h:
src/model/config.h:
src/core/error.h:
src/model/params.h:
src/moe/router.h:
src/core/threads.h:
src/kernels/cpu/gemm.h:
src/model/ffn.h:
