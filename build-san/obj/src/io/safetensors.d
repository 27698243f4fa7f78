build-san/obj/src/io/safetensors.o: src/io/safetensors.c \
 src/io/safetensors.h src/core/error.h src/io/fsutil.h
src/io/safetensors.h:
src/core/error.h:
src/io/fsutil.h:
