build-san/obj/src/core/threads.o: src/core/threads.c src/core/threads.h \
 src/core/error.h
src/core/threads.h:
src/core/error.h:
