build-san/obj/src/io/npy.o: src/io/npy.c src/io/npy.h src/core/error.h \
 src/io/fsutil.h
src/io/npy.h:
src/core/error.h:
src/io/fsutil.h:
