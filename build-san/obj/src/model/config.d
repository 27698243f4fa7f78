build-san/obj/src/model/config.o: src/model/config.c src/model/config.h \
 src/core/error.h
src/model/config.h:
src/core/error.h:
