# Cortex-M images for QEMU's mps2-an385 (Cortex-M3), mps2-an386 (Cortex-M4F) and mps3-an547 (Cortex-M55 with
# Helium/MVE): see README.md.
#
# Include it (from firmware_ref/Makefile: `include arm/arm.mk`) or use it standalone:
#   make -f firmware_ref/arm/arm.mk arm-demo-run                      # build + run hello on both boards
#   make -f firmware_ref/arm/arm.mk ARM_BOARD=an385 ARM_NAME=mine \
#        ARM_SRCS="a.c b.c" ARM_INCLUDES="-Ifirmware_ref/include" arm-run   # any list of C sources
#
# Per image NAME (the demo images and the ARM_NAME image; more with $(eval $(call arm_image,...))):
#   arm-NAME          build $(ARM_BUILD)/NAME/NAME.elf, its .map, and NAME.size (arm-none-eabi-size output)
#   arm-NAME-size     print the size report (Berkeley: text data bss dec hex filename)
#   arm-NAME-run      run under QEMU (-icount shift=0) through run.sh; fails if the exit code is not 0
#   arm-NAME-nofloat  fail if the image links a soft-float helper (__aeabi_f* / __aeabi_d*)
# The ARM_NAME image also gets the aliases arm-image, arm-size, arm-run, arm-nofloat.
# Variables start with ARM_ so that including this file cannot clash with the including Makefile.

ARM_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
_arm_standalone := $(if $(filter 1,$(words $(MAKEFILE_LIST))),1,)
_arm_prev_default_goal := $(.DEFAULT_GOAL)

ARM_PREFIX ?= arm-none-eabi-
ARM_CC ?= $(ARM_PREFIX)gcc
ARM_SIZE ?= $(ARM_PREFIX)size
ARM_NM ?= $(ARM_PREFIX)nm
ARM_QEMU ?= qemu-system-arm
ARM_TIMEOUT ?= 120
ARM_BUILD ?= build/arm
ARM_STACK_SIZE ?= 16384

# CPU flags per board (an547: its SysTick runs at 32 MHz, semihost.c converts ticks to instructions with it)
ARM_CPU_an385 := -mcpu=cortex-m3 -mthumb -mfloat-abi=soft
ARM_CPU_an386 := -mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard
ARM_CPU_an547 := -mcpu=cortex-m55 -mthumb -mfloat-abi=hard -DSH_SYSCLK_HZ=32000000u
# linker script per board: the MPS2 boards share one memory map, the AN547 has its own (TCMs)
ARM_LDSCRIPT_an385 := $(ARM_DIR)/mps2.ld
ARM_LDSCRIPT_an386 := $(ARM_DIR)/mps2.ld
ARM_LDSCRIPT_an547 := $(ARM_DIR)/mps3-an547.ld

ARM_CSTD ?= -std=c99
ARM_OPT ?= -Os
ARM_WARN ?= -Wall -Wextra
ARM_INCLUDES ?=
ARM_CFLAGS ?= $(ARM_CSTD) $(ARM_OPT) $(ARM_WARN) -g -ffunction-sections -fdata-sections
# newlib's libc/libm only for what the code calls (memcpy, memset, expf, ...); nothing provides the
# stdio syscalls, so a stray printf fails to link instead of dragging newlib stdio in.
ARM_LIBS ?= -Wl,--start-group -lc -lm -lgcc -Wl,--end-group
ARM_LDFLAGS ?= -nostdlib -nostartfiles -Wl,--gc-sections \
  -Wl,--defsym=__stack_size=$(ARM_STACK_SIZE)

ARM_RUNTIME_SRCS := $(ARM_DIR)/startup.S $(ARM_DIR)/semihost.c
ARM_RUNTIME_DEPS := $(ARM_RUNTIME_SRCS) $(ARM_DIR)/semihost.h $(ARM_DIR)/semihost_io.inc $(ARM_DIR)/mps2.ld \
  $(ARM_DIR)/mps3-an547.ld $(ARM_DIR)/arm.mk

# $(call arm_image,NAME,BOARD,C_SOURCES,EXTRA_CFLAGS[,EXTRA_DEPS])
# One compile+link command per image (sources are few and small); it is redone when a source, a
# header in EXTRA_DEPS or the runtime changes. Use a different NAME for each set of flags.
define arm_image
$(ARM_BUILD)/$(1)/$(1).elf: $(3) $(5) $(ARM_RUNTIME_DEPS)
	@mkdir -p $$(@D)
	$$(ARM_CC) $$(ARM_CPU_$(2)) $$(ARM_CFLAGS) -I$$(ARM_DIR) $$(ARM_INCLUDES) $(4) -T $$(ARM_LDSCRIPT_$(2)) $$(ARM_LDFLAGS) \
	  -Wl,-Map=$$(@:.elf=.map) $$(ARM_RUNTIME_SRCS) $(3) $$(ARM_LIBS) -o $$@
	$$(ARM_SIZE) $$@ | tee $$(@:.elf=.size)

.PHONY: arm-$(1) arm-$(1)-size arm-$(1)-run arm-$(1)-nofloat
arm-$(1): $(ARM_BUILD)/$(1)/$(1).elf

arm-$(1)-size: $(ARM_BUILD)/$(1)/$(1).elf
	$$(ARM_SIZE) $$<

arm-$(1)-run: $(ARM_BUILD)/$(1)/$(1).elf
	ARM_QEMU=$$(ARM_QEMU) sh $$(ARM_DIR)/run.sh $(2) $$< $$(ARM_TIMEOUT)

arm-$(1)-nofloat: $(ARM_BUILD)/$(1)/$(1).elf
	@if $$(ARM_NM) $$< | grep -E ' __aeabi_[fd]'; then \
	  echo "$$<: links soft-float helpers (above)" >&2; exit 1; \
	else echo "$$<: no __aeabi_f*/__aeabi_d* symbol"; fi
endef

# ---- demo images (firmware_ref/arm/demo)
ARM_DEMO_IMAGES := hello-an385 hello-an386 hello-an547
$(eval $(call arm_image,hello-an385,an385,$(ARM_DIR)/demo/hello.c,))
$(eval $(call arm_image,hello-an386,an386,$(ARM_DIR)/demo/hello.c,))
$(eval $(call arm_image,hello-an547,an547,$(ARM_DIR)/demo/hello.c,))
$(eval $(call arm_image,hello-exit3-an385,an385,$(ARM_DIR)/demo/hello.c,-DHELLO_EXIT_CODE=3))
# SysTick period 2^10 ticks: the measured loop spans several counter wraps (tests the wrap handling)
$(eval $(call arm_image,hello-wrap-an385,an385,$(ARM_DIR)/demo/hello.c,-DSH_SYSTICK_BITS=10))
$(eval $(call arm_image,floatprobe-an385,an385,$(ARM_DIR)/demo/float_probe.c,))

.PHONY: arm-demo arm-demo-run arm-clean
arm-demo: $(addprefix arm-,$(ARM_DEMO_IMAGES))
arm-demo-run: $(addsuffix -run,$(addprefix arm-,$(ARM_DEMO_IMAGES)))

arm-clean:
	rm -rf $(ARM_BUILD)

# ---- the image named on the command line: ARM_NAME, ARM_BOARD, ARM_SRCS (+ ARM_EXTRA_CFLAGS, ARM_DEPS)
ARM_NAME ?= image
ARM_BOARD ?= an385
ifneq ($(strip $(ARM_SRCS)),)
$(eval $(call arm_image,$(ARM_NAME),$(ARM_BOARD),$(ARM_SRCS),$(ARM_EXTRA_CFLAGS),$(ARM_DEPS)))
.PHONY: arm-image arm-size arm-run arm-nofloat
arm-image: arm-$(ARM_NAME)
arm-size: arm-$(ARM_NAME)-size
arm-run: arm-$(ARM_NAME)-run
arm-nofloat: arm-$(ARM_NAME)-nofloat
endif

# ---- the C99 library (when included from firmware_ref/Makefile, which defines LIB_*_SRCS, run from firmware_ref/)
#   (ARM_LIB_FLAGS and ARM_FLOAT_FLAGS add the Makefile's EXT_DEFINES: -DRNNEDGE_EXTENSIONS=0 with EXTENSIONS=0)
#   arm-lib        compile every LIB_SRCS file for both boards with the library's STRICT_FLAGS, print the object
#                  sizes, and fail if an LIB_INT8_SRCS object needs a soft-float helper on the Cortex-M3
#   arm-int8-an385 / arm-int8-an386 / arm-int8-an547 (+ -run, -size, -nofloat): an image of LIB_INT8_SRCS +
#                  MODEL_DIR/model_data.c + ARM_LIB_MAIN (default tests/arm_test.c, a main() using semihost.h),
#                  defined only when MODEL_DIR is set and ARM_LIB_MAIN exists; an547 (Cortex-M55) runs the Helium
#                  (MVE) int8 kernels of src/rnnedge_mve.h
ifneq ($(strip $(LIB_INT8_SRCS)),)
ARM_LIB_MAIN ?= tests/arm_test.c
ARM_LIB_INCLUDES ?= -Iinclude
ARM_LIB_FLAGS ?= $(STRICT_FLAGS) $(EXT_DEFINES)
_arm_lib_obj = $(ARM_BUILD)/lib-$(1)/$(notdir $(2:.c=.o))

.PHONY: arm-lib
arm-lib: $(LIB_SRCS) $(LIB_HDRS) $(ARM_DIR)/arm.mk
	@mkdir -p $(ARM_BUILD)/lib-an385 $(ARM_BUILD)/lib-an386
	$(foreach b,an385 an386,$(foreach src,$(LIB_SRCS),$(ARM_CC) $(ARM_CPU_$(b)) $(ARM_CFLAGS) $(ARM_LIB_FLAGS) \
	  $(ARM_LIB_INCLUDES) -c $(src) -o $(call _arm_lib_obj,$(b),$(src)) &&)) true
	$(ARM_SIZE) $(foreach b,an385 an386,$(foreach src,$(LIB_SRCS),$(call _arm_lib_obj,$(b),$(src))))
	@if $(ARM_NM) -u $(foreach src,$(LIB_INT8_SRCS),$(call _arm_lib_obj,an385,$(src))) | grep -E '__aeabi_[fd]'; then \
	  echo "arm-lib: the int8 library needs the soft-float helpers above on the Cortex-M3" >&2; exit 1; \
	else echo "arm-lib: int8 objects reference no __aeabi_f*/__aeabi_d* on the Cortex-M3"; fi

# MODEL_STAMP (firmware_ref/Makefile): changes with MODEL_DIR, so an image is rebuilt for another model folder
ifneq ($(and $(strip $(MODEL_DIR)),$(wildcard $(ARM_LIB_MAIN))),)
_arm_lib_image_srcs := $(LIB_INT8_SRCS) $(MODEL_DIR)/model_data.c $(ARM_LIB_MAIN)
_arm_lib_image_flags := $(ARM_LIB_FLAGS) $(ARM_LIB_INCLUDES) -I$(MODEL_DIR) -I$(VECTORS_DIR)
_arm_lib_image_deps := $(LIB_HDRS) $(MODEL_DIR)/model_data.h $(wildcard $(VECTORS_DIR)/vectors_data.h) $(MODEL_STAMP)
$(eval $(call arm_image,int8-an385,an385,$(_arm_lib_image_srcs),$(_arm_lib_image_flags),$(_arm_lib_image_deps)))
$(eval $(call arm_image,int8-an386,an386,$(_arm_lib_image_srcs),$(_arm_lib_image_flags),$(_arm_lib_image_deps)))
$(eval $(call arm_image,int8-an547,an547,$(_arm_lib_image_srcs),$(_arm_lib_image_flags),$(_arm_lib_image_deps)))
endif

#   arm-example-an385 / arm-example-an386 (+ -run, -size, -nofloat): the example program ARM_EXAMPLE_MAIN (default
#                  examples/main.c) + LIB_INT8_SRCS + MODEL_DIR/model_data.c, printing one class per sample through
#                  semihosting (-DEXAMPLE_SEMIHOST); defined only when MODEL_DIR is set. Its samples come from
#                  examples/samples.h (the inputs of VECTORS_DIR/vectors_data.h) unless ARM_EXAMPLE_SAMPLES names
#                  another header (N_SAMPLES and samples[][MODEL_N_IN] or sample_tokens[]; use a separate
#                  ARM_BUILD per samples header, the flags are not tracked).
ARM_EXAMPLE_MAIN ?= examples/main.c
ARM_EXAMPLE_SAMPLES ?=
ifneq ($(and $(strip $(MODEL_DIR)),$(wildcard $(ARM_EXAMPLE_MAIN))),)
_arm_example_srcs := $(LIB_INT8_SRCS) $(MODEL_DIR)/model_data.c $(ARM_EXAMPLE_MAIN)
_arm_example_flags := $(ARM_LIB_FLAGS) $(ARM_LIB_INCLUDES) -I$(MODEL_DIR) -I$(VECTORS_DIR) -DEXAMPLE_SEMIHOST \
  $(if $(strip $(ARM_EXAMPLE_SAMPLES)),'-DEXAMPLE_SAMPLES_FILE="$(abspath $(ARM_EXAMPLE_SAMPLES))"')
_arm_example_deps := $(MODEL_STAMP) $(LIB_HDRS) $(MODEL_DIR)/model_data.h $(wildcard $(dir $(ARM_EXAMPLE_MAIN))samples.h) \
  $(ARM_EXAMPLE_SAMPLES) $(wildcard $(VECTORS_DIR)/vectors_data.h)
_arm_example_deps += $(wildcard $(dir $(ARM_EXAMPLE_MAIN))argmax_scaled.h)
$(eval $(call arm_image,example-an385,an385,$(_arm_example_srcs),$(_arm_example_flags),$(_arm_example_deps)))
$(eval $(call arm_image,example-an386,an386,$(_arm_example_srcs),$(_arm_example_flags),$(_arm_example_deps)))
endif

#   arm-generate-an385 / arm-generate-an386 (+ -run, -size, -nofloat): examples/generate.c (ARM_GENERATE_MAIN) +
#                  LIB_INT8_SRCS + MODEL_DIR/model_data.c for a token model whose head predicts the next token:
#                  streams a prompt, then prints the generated token ids through semihosting; defined only when
#                  MODEL_DIR is set. ARM_GENERATE_PROMPT names a prompt header (N_PROMPT, prompt_tokens[]; the
#                  built-in prompt otherwise), ARM_GENERATE_FLAGS adds -D flags (-DGENERATE_N=32 -DGENERATE_TOP_K=5
#                  -DGENERATE_SEED=7 -DGENERATE_TEMPERATURE_Q8=200; greedy by default). Neither is tracked as a
#                  dependency: use a separate ARM_BUILD per prompt / flag set.
ARM_GENERATE_MAIN ?= examples/generate.c
ARM_GENERATE_PROMPT ?=
ARM_GENERATE_FLAGS ?=
ifneq ($(and $(strip $(MODEL_DIR)),$(wildcard $(ARM_GENERATE_MAIN))),)
_arm_generate_srcs := $(LIB_INT8_SRCS) $(MODEL_DIR)/model_data.c $(ARM_GENERATE_MAIN)
_arm_generate_flags := $(ARM_LIB_FLAGS) $(ARM_LIB_INCLUDES) -I$(MODEL_DIR) -DEXAMPLE_SEMIHOST $(ARM_GENERATE_FLAGS) \
  $(if $(strip $(ARM_GENERATE_PROMPT)),'-DGENERATE_PROMPT_FILE="$(abspath $(ARM_GENERATE_PROMPT))"')
_arm_generate_deps := $(MODEL_STAMP) $(LIB_HDRS) $(MODEL_DIR)/model_data.h $(ARM_GENERATE_PROMPT) \
  $(wildcard $(dir $(ARM_GENERATE_MAIN))argmax_scaled.h)
$(eval $(call arm_image,generate-an385,an385,$(_arm_generate_srcs),$(_arm_generate_flags),$(_arm_generate_deps)))
$(eval $(call arm_image,generate-an386,an386,$(_arm_generate_srcs),$(_arm_generate_flags),$(_arm_generate_deps)))
endif
endif

# ---- the float library (f32, int8w) on the Cortex-M4F (when included from firmware_ref/Makefile, which defines
#      LIB_FLOAT_SRCS, LIB_FLOAT_HDRS and FLOAT_FLAGS)
#   arm-float-an386 (+ -run, -size): an image of LIB_FLOAT_SRCS + MODEL_DIR/model_data.c + ARM_FLOAT_MAIN (default
#                  tests/arm_test_float.c) for an f32 or int8w model (its model_data.h picks the precision), with
#                  FLOAT_FLAGS -Iinclude -I$(MODEL_DIR) -I$(VECTORS_DIR), hard-float FPv4-SP (the startup enables
#                  the FPU); defined only when MODEL_DIR is set and ARM_FLOAT_MAIN exists. (An -nofloat target
#                  exists too, as for every image; it is meaningless for a float image.)
ifneq ($(strip $(LIB_FLOAT_SRCS)),)
ARM_FLOAT_MAIN ?= tests/arm_test_float.c
ARM_FLOAT_FLAGS ?= $(FLOAT_FLAGS) $(EXT_DEFINES)
ifneq ($(and $(strip $(MODEL_DIR)),$(wildcard $(ARM_FLOAT_MAIN))),)
_arm_float_srcs := $(LIB_FLOAT_SRCS) $(MODEL_DIR)/model_data.c $(ARM_FLOAT_MAIN)
_arm_float_flags := $(ARM_FLOAT_FLAGS) -Iinclude -I$(MODEL_DIR) -I$(VECTORS_DIR)
_arm_float_deps := $(LIB_FLOAT_HDRS) $(MODEL_DIR)/model_data.h $(wildcard $(VECTORS_DIR)/vectors_data.h) $(MODEL_STAMP)
$(eval $(call arm_image,float-an386,an386,$(_arm_float_srcs),$(_arm_float_flags),$(_arm_float_deps)))
endif
endif

# standalone: `make -f arm.mk` builds the demo; included: leave the includer's default goal alone
ifeq ($(_arm_standalone),1)
.DEFAULT_GOAL := arm-demo
else
.DEFAULT_GOAL := $(_arm_prev_default_goal)
endif
