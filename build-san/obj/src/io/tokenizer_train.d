build-san/obj/src/io/tokenizer_train.o: src/io/tokenizer_train.c \
 src/io/tokenizer_internal.h src/core/error.h src/io/tokenizer.h
src/io/tokenizer_internal.h:
src/core/error.h:
src/io/tokenizer.h:
