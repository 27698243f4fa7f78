build-san/obj/src/moe/router.o: src/moe/router.c src/moe/router.h \
 src/model/config.h src/core/error.h
src/moe/router.h:
src/model/config.h:
src/core/error.h:
