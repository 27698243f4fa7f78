build-san/obj/src/io/png.o: src/io/png.c src/io/png.h src/core/error.h
src/io/png.h:
src/core/error.h:
