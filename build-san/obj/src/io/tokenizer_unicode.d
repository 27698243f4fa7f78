build-san/obj/src/io/tokenizer_unicode.o: src/io/tokenizer_unicode.c \
 src/io/tokenizer_internal.h src/core/error.h src/io/tokenizer.h
src/io/tokenizer_internal.h:
src/core/error.h:
src/io/tokenizer.h:
