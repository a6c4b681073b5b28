# Toolchain file for rv32imac with Debian's riscv64-unknown-elf-gcc and picolibc (riscv/riscv.mk's flags):
#   cmake -S . -B build -DCMAKE_TOOLCHAIN_FILE=path/to/firmware_ref/cmake/riscv32-unknown-elf.cmake
# RNNEDGE_RISCV_ARCH: -march/-mabi (a multilib picolibc ships; default rv32imac, ilp32, no FPU). Startup code and
# linker script are the application's; picolibc.specs gives picolibc's headers and libc. CMake's own compiler
# checks build a static library instead of linking a program.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR riscv32)

set(RNNEDGE_RISCV_PREFIX "riscv64-unknown-elf-" CACHE STRING "prefix of the cross tools (riscv64-unknown-elf-gcc, ...)")
set(RNNEDGE_RISCV_ARCH "-march=rv32imac -mabi=ilp32 -mcmodel=medany" CACHE STRING "the core's compiler flags")

set(CMAKE_C_COMPILER ${RNNEDGE_RISCV_PREFIX}gcc)
set(CMAKE_ASM_COMPILER ${RNNEDGE_RISCV_PREFIX}gcc)
set(CMAKE_AR ${RNNEDGE_RISCV_PREFIX}ar CACHE FILEPATH "")
set(CMAKE_RANLIB ${RNNEDGE_RISCV_PREFIX}ranlib CACHE FILEPATH "")
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

set(CMAKE_C_FLAGS_INIT "${RNNEDGE_RISCV_ARCH} --specs=picolibc.specs -ffunction-sections -fdata-sections")
set(CMAKE_ASM_FLAGS_INIT "${RNNEDGE_RISCV_ARCH}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-Wl,--gc-sections")

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
