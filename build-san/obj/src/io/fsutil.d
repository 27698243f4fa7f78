build-san/obj/src/io/fsutil.o: src/io/fsutil.c src/io/fsutil.h \
 src/core/error.h
src/io/fsutil.h:
src/core/error.h:
