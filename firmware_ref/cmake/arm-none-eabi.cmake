# Toolchain file for Cortex-M with arm-none-eabi-gcc (and newlib):
#   cmake -S . -B build -DCMAKE_TOOLCHAIN_FILE=path/to/firmware_ref/cmake/arm-none-eabi.cmake \
#         [-DRNNEDGE_ARM_CPU="-mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard"]
# RNNEDGE_ARM_CPU: the core's flags, default the Cortex-M3 (arm/arm.mk's an385: -mcpu=cortex-m3 -mthumb
# -mfloat-abi=soft). Startup code, linker script and libraries are the application's: CMake's own compiler
# checks build a static library instead of linking a program.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)

set(RNNEDGE_ARM_PREFIX "arm-none-eabi-" CACHE STRING "prefix of the cross tools (arm-none-eabi-gcc, ...)")
set(RNNEDGE_ARM_CPU "-mcpu=cortex-m3 -mthumb -mfloat-abi=soft" CACHE STRING "the Cortex-M core's compiler flags")

set(CMAKE_C_COMPILER ${RNNEDGE_ARM_PREFIX}gcc)
set(CMAKE_ASM_COMPILER ${RNNEDGE_ARM_PREFIX}gcc)
set(CMAKE_AR ${RNNEDGE_ARM_PREFIX}ar CACHE FILEPATH "")
set(CMAKE_RANLIB ${RNNEDGE_ARM_PREFIX}ranlib CACHE FILEPATH "")
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

set(CMAKE_C_FLAGS_INIT "${RNNEDGE_ARM_CPU} -ffunction-sections -fdata-sections")
set(CMAKE_ASM_FLAGS_INIT "${RNNEDGE_ARM_CPU}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-Wl,--gc-sections")

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
