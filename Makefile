# moec build. Every .c under src/ goes into build/libmoec.a; tools/moec.c is the CLI; each tests/test_*.c is a
# standalone test binary. No global -march: SIMD kernels select their instruction set at run time
# (function target attributes + CPU detection), so one binary runs on AVX-512, AVX2 or plain x86-64.
# DEFS=-DMOEC_EMULATE_AVX512 (with its own BUILD dir) builds moec with emulated AVX-512 kernels for the test suite's
# avx512-emulated pass (src/kernels/cpu/avx512.h).
CC      ?= cc
SAN     ?=
DEFS    ?=
OPT     ?= -O2 -fvect-cost-model=dynamic -fno-math-errno
CFLAGS  ?= $(OPT) -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter -fno-strict-aliasing -pthread $(SAN)
CPPFLAGS += -Iinclude -Isrc $(DEFS)
LDLIBS  = -lcjson -lm -pthread
BUILD   ?= build

LIB_SRC   := $(shell find src -name '*.c' | sort)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
TEST_SRC  := $(wildcard tests/test_*.c)
TEST_BIN  := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

all: $(BUILD)/moec $(TEST_BIN) $(BENCH_BIN)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libmoec.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

TOOL_SRC  := $(wildcard tools/*.c)
TOOL_OBJ  := $(TOOL_SRC:%.c=$(BUILD)/obj/%.o)

$(BUILD)/moec: $(TOOL_OBJ) $(BUILD)/libmoec.a
	$(CC) $(CFLAGS) $(TOOL_OBJ) -o $@ $(BUILD)/libmoec.a $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(BUILD)/libmoec.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $< -o $@ $(BUILD)/libmoec.a $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libmoec.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $< -o $@ $(BUILD)/libmoec.a $(LDLIBS)

clean:
	rm -rf $(BUILD)

-include $(LIB_OBJ:.o=.d) $(TOOL_OBJ:.o=.d)
.PHONY: all clean
