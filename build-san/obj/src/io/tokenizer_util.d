build-san/obj/src/io/tokenizer_util.o: src/io/tokenizer_util.c \
 src/io/tokenizer_internal.h src/core/error.h src/io/tokenizer.h
src/io/tokenizer_internal.h:
src/core/error.h:
src/io/tokenizer.h:
