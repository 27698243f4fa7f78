build-san/obj/src/model/model.o: src/model/model.c src/model/model.h \
 src/model/config.h src/core/error.h src/model/params.h \
 src/moe/moe_layer.h src/moe/router.h src/core/rng.h \
 src/kernels/cpu/attention.h src/kernels/cpu/gemm.h src/kernels/cpu/ops.h \
 src/model/ffn.h
src/model/model.h:
src/model/config.h:
src/core/error.h:
src/model/params.h:
src/moe/moe_layer.h:
src/moe/router.h:
src/core/rng.h:
src/kernels/cpu/attention.h:
src/kernels/cpu/gemm.h:
src/kernels/cpu/ops.h:
src/model/ffn.h:
