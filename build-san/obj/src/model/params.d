build-san/obj/src/model/params.o: src/model/params.c src/model/params.h \
 src/model/config.h src/core/error.h
src/model/params.h:
src/model/config.h:
src/core/error.h:
