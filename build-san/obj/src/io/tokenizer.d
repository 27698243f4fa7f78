build-san/obj/src/io/tokenizer.o: src/io/tokenizer.c \
 src/io/tokenizer_internal.h src/core/error.h src/io/tokenizer.h
src/io/tokenizer_internal.h:
src/core/error.h:
src/io/tokenizer.h:
