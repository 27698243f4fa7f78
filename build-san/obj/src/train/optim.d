build-san/obj/src/train/optim.o: src/train/optim.c src/train/optim.h \
 src/model/params.h src/model/config.h src/core/error.h \
 src/core/threads.h
src/train/optim.h:
src/model/params.h:
src/model/config.h:
src/core/error.h:
src/core/threads.h:
