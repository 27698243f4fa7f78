build-san/obj/src/train/plot.o: src/train/plot.c src/train/plot.h \
 src/core/error.h src/io/png.h src/train/font5x7.h
src/train/plot.h:
src/core/error.h:
src/io/png.h:
src/train/font5x7.h:
