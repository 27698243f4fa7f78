build-san/obj/src/io/model_dir.o: src/io/model_dir.c src/io/model_dir.h \
 src/core/error.h src/model/config.h src/model/params.h src/io/fsutil.h \
 src/io/safetensors.h
src/io/model_dir.h:
src/core/error.h:
src/model/config.h:
src/model/params.h:
src/io/fsutil.h:
src/io/safetensors.h:
