build-san/obj/src/train/data.o: src/train/data.c src/train/data.h \
 src/core/error.h src/io/tokenizer.h src/core/rng.h src/io/fsutil.h
src/train/data.h:
src/core/error.h:
src/io/tokenizer.h:
src/core/rng.h:
src/io/fsutil.h:
