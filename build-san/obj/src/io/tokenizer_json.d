build-san/obj/src/io/tokenizer_json.o: src/io/tokenizer_json.c \
 src/io/tokenizer_internal.h src/core/error.h src/io/tokenizer.h \
 src/io/fsutil.h
src/io/tokenizer_internal.h:
src/core/error.h:
src/io/tokenizer.h:
src/io/fsutil.h:
