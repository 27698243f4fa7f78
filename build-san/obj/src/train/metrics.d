build-san/obj/src/train/metrics.o: src/train/metrics.c \
 src/train/metrics.h src/core/error.h
src/train/metrics.h:
src/core/error.h:
