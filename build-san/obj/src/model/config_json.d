build-san/obj/src/model/config_json.o: src/model/config_json.c \
 src/model/config.h src/core/error.h src/io/fsutil.h
src/model/config.h:
src/core/error.h:
src/io/fsutil.h:
