# rv32imac images for QEMU's RISC-V `virt` machine (qemu-system-riscv32, semihosting): see README.md.
#
# Included by firmware_ref/Makefile (`-include riscv/riscv.mk`), run from firmware_ref/; uses its LIB_*_SRCS,
# LIB_*_HDRS, STRICT_FLAGS, FLOAT_FLAGS, EXT_DEFINES, MODEL_DIR, VECTORS_DIR and MODEL_STAMP. Per image NAME:
#   riscv-NAME          build $(RISCV_BUILD)/NAME/NAME.elf, its .map and NAME.size (Berkeley size output)
#   riscv-NAME-run      run under QEMU (-icount shift=0) through run.sh; fails if the exit code is not 0
#   riscv-NAME-nofloat  fail if the image links a soft-float routine of libgcc (__addsf3, __muldf3, __fixsfsi, ...)
# Images (defined when MODEL_DIR is set):
#   int8     LIB_INT8_SRCS + MODEL_DIR/model_data.c + tests/arm_test.c: the int8 golden vectors bit for bit
#   float    LIB_FLOAT_SRCS + MODEL_DIR/model_data.c + tests/arm_test_float.c: f32 / int8w vectors by the float
#            rule; rv32imac has no FPU, so this is soft float (libgcc's __addsf3, __mulsf3, ...)
#   example  LIB_INT8_SRCS + MODEL_DIR/model_data.c + examples/main.c (-DEXAMPLE_SEMIHOST), samples.h's inputs
#   bench    LIB_INT8_SRCS + MODEL_DIR/model_data.c + arm/bench/step_bench.c (instructions per step on LCG inputs,
#            export/footprint.py's image; RISCV_BENCH_FLAGS adds -D flags, default -DBENCH_STEPS=64, not tracked)
#   $(RISCV_NAME) any C sources: RISCV_NAME (default image), RISCV_SRCS, RISCV_EXTRA_CFLAGS, RISCV_DEPS, e.g.
#            make RISCV_NAME=mine RISCV_SRCS="a.c b.c" RISCV_EXTRA_CFLAGS=-Iinclude riscv-mine-run
# and riscv-lib: compile LIB_SRCS with the strict flags for rv32imac and fail if an int8 object needs soft float.
# riscv-test = riscv-int8-run riscv-int8-nofloat.
# Variables start with RISCV_ so that including this file cannot clash with the including Makefile.

RISCV_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
_riscv_prev_default_goal := $(.DEFAULT_GOAL)

RISCV_PREFIX ?= riscv64-unknown-elf-
RISCV_CC ?= $(RISCV_PREFIX)gcc
RISCV_SIZE ?= $(RISCV_PREFIX)size
RISCV_NM ?= $(RISCV_PREFIX)nm
RISCV_QEMU ?= qemu-system-riscv32
RISCV_TIMEOUT ?= 120
RISCV_BUILD ?= build/riscv
RISCV_STACK_SIZE ?= 16384

# rv32imac, ilp32 (no FPU): the multilib picolibc ships; medany because the image sits at 0x80000000
RISCV_ARCH ?= -march=rv32imac -mabi=ilp32 -mcmodel=medany
RISCV_OPT ?= -Os
# picolibc.specs: picolibc's headers, and its libc (memcpy, memset) for the multilib at link time. No stdio
# syscalls are provided, so a stray printf fails to link.
RISCV_CFLAGS ?= $(RISCV_ARCH) $(RISCV_OPT) -g -ffunction-sections -fdata-sections --specs=picolibc.specs
# our startup and linker script instead of picolibc's crt0 and picolibc.ld
RISCV_LDFLAGS ?= -nostartfiles -T $(RISCV_DIR)/virt.ld -Wl,--gc-sections \
  -Wl,--no-warn-rwx-segments -Wl,--defsym=__stack_size=$(RISCV_STACK_SIZE)
RISCV_SOFT_FLOAT := ' __(add|sub|mul|div|neg|eq|ne|lt|le|gt|ge|unord)[sd]f[23]$$| __(fix|fixuns)[sd]f[sd]i$$| __float(un)?[sd]i[sd]f$$| __(extendsfdf2|truncdfsf2)$$'

RISCV_RUNTIME_SRCS := $(RISCV_DIR)/startup.S $(RISCV_DIR)/semihost.c
RISCV_RUNTIME_DEPS := $(RISCV_RUNTIME_SRCS) $(RISCV_DIR)/semihost.h $(RISCV_DIR)/../arm/semihost_io.inc $(RISCV_DIR)/virt.ld $(RISCV_DIR)/riscv.mk

# $(call riscv_image,NAME,C_SOURCES,EXTRA_CFLAGS[,EXTRA_DEPS]): one compile+link command per image, as arm.mk
define riscv_image
$(RISCV_BUILD)/$(1)/$(1).elf: $(2) $(4) $(RISCV_RUNTIME_DEPS)
	@mkdir -p $$(@D)
	$$(RISCV_CC) $$(RISCV_CFLAGS) -I$$(RISCV_DIR) $(3) $$(RISCV_LDFLAGS) -Wl,-Map=$$(@:.elf=.map) \
	  $$(RISCV_RUNTIME_SRCS) $(2) -o $$@
	$$(RISCV_SIZE) $$@ | tee $$(@:.elf=.size)

.PHONY: riscv-$(1) riscv-$(1)-run riscv-$(1)-nofloat
riscv-$(1): $(RISCV_BUILD)/$(1)/$(1).elf

riscv-$(1)-run: $(RISCV_BUILD)/$(1)/$(1).elf
	RISCV_QEMU=$$(RISCV_QEMU) sh $$(RISCV_DIR)/run.sh $$< $$(RISCV_TIMEOUT)

riscv-$(1)-nofloat: $(RISCV_BUILD)/$(1)/$(1).elf
	@if $$(RISCV_NM) $$< | grep -E $$(RISCV_SOFT_FLOAT); then \
	  echo "$$<: links soft-float routines (above)" >&2; exit 1; \
	else echo "$$<: no soft-float routine"; fi
endef

.PHONY: riscv-lib riscv-test riscv-clean
_riscv_lib_obj = $(RISCV_BUILD)/lib/$(notdir $(1:.c=.o))
riscv-lib: $(LIB_SRCS) $(LIB_FLOAT_SRCS) $(LIB_HDRS) $(LIB_FLOAT_HDRS) $(RISCV_DIR)/riscv.mk
	@mkdir -p $(RISCV_BUILD)/lib
	$(foreach src,$(LIB_SRCS),$(RISCV_CC) $(RISCV_CFLAGS) $(STRICT_FLAGS) $(EXT_DEFINES) -Iinclude -c $(src) \
	  -o $(call _riscv_lib_obj,$(src)) &&) true
	$(foreach src,$(LIB_FLOAT_SRCS),$(RISCV_CC) $(RISCV_CFLAGS) $(FLOAT_FLAGS) $(EXT_DEFINES) -Iinclude -c $(src) \
	  -o $(call _riscv_lib_obj,$(src)) &&) true
	$(RISCV_SIZE) $(foreach src,$(LIB_SRCS) $(LIB_FLOAT_SRCS),$(call _riscv_lib_obj,$(src)))
	@if $(RISCV_NM) -u $(foreach src,$(LIB_INT8_SRCS),$(call _riscv_lib_obj,$(src))) | grep -E $(RISCV_SOFT_FLOAT); then \
	  echo "riscv-lib: the int8 library needs the soft-float routines above on rv32imac" >&2; exit 1; \
	else echo "riscv-lib: int8 objects reference no soft-float routine on rv32imac"; fi

riscv-test: check-model-dir riscv-int8-run riscv-int8-nofloat

riscv-clean:
	rm -rf $(RISCV_BUILD)

RISCV_NAME ?= image
ifneq ($(strip $(RISCV_SRCS)),)
$(eval $(call riscv_image,$(RISCV_NAME),$(RISCV_SRCS),$(RISCV_EXTRA_CFLAGS),$(RISCV_DEPS)))
endif

ifneq ($(strip $(MODEL_DIR)),)
_riscv_model_deps := $(MODEL_DIR)/model_data.h $(wildcard $(VECTORS_DIR)/vectors_data.h) $(MODEL_STAMP)
_riscv_model_flags := -Iinclude -I$(MODEL_DIR) -I$(VECTORS_DIR)
$(eval $(call riscv_image,int8,$(LIB_INT8_SRCS) $(MODEL_DIR)/model_data.c tests/arm_test.c,\
  $(STRICT_FLAGS) $(EXT_DEFINES) $(_riscv_model_flags),$(LIB_HDRS) $(_riscv_model_deps)))
$(eval $(call riscv_image,float,$(LIB_FLOAT_SRCS) $(MODEL_DIR)/model_data.c tests/arm_test_float.c,\
  $(FLOAT_FLAGS) $(EXT_DEFINES) $(_riscv_model_flags),$(LIB_FLOAT_HDRS) $(_riscv_model_deps)))
$(eval $(call riscv_image,example,$(LIB_INT8_SRCS) $(MODEL_DIR)/model_data.c examples/main.c,\
  $(STRICT_FLAGS) $(EXT_DEFINES) $(_riscv_model_flags) -DEXAMPLE_SEMIHOST,\
  $(LIB_HDRS) $(_riscv_model_deps) $(wildcard examples/*.h)))
RISCV_BENCH_FLAGS ?= -DBENCH_STEPS=64
$(eval $(call riscv_image,bench,$(LIB_INT8_SRCS) $(MODEL_DIR)/model_data.c arm/bench/step_bench.c,\
  $(STRICT_FLAGS) $(EXT_DEFINES) $(_riscv_model_flags) $(RISCV_BENCH_FLAGS),$(LIB_HDRS) $(_riscv_model_deps)))
endif

.DEFAULT_GOAL := $(_riscv_prev_default_goal)
