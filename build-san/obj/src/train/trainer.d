build-san/obj/src/train/trainer.o: src/train/trainer.c \
 src/train/trainer.h src/model/model.h src/model/config.h \
 src/core/error.h src/model/params.h src/moe/moe_layer.h src/moe/router.h \
 src/train/optim.h src/io/fsutil.h src/io/model_dir.h \
 src/io/safetensors.h src/train/data.h src/io/tokenizer.h \
 src/train/metrics.h
src/train/trainer.h:
src/model/model.h:
src/model/config.h:
src/core/error.h:
src/model/params.h:
src/moe/moe_layer.h:
src/moe/router.h:
src/train/optim.h:
src/io/fsutil.h:
src/io/model_dir.h:
src/io/safetensors.h:
src/train/data.h:
src/io/tokenizer.h:
src/train/metrics.h:
