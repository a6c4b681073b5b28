#!/bin/sh
# Run an rv32 image under QEMU's `virt` machine and return its semihosting exit code.
#   usage: run.sh IMAGE.elf [TIMEOUT_SECONDS]
# Program output (SYS_WRITE0/SYS_WRITEC) goes to stdout, QEMU's own messages to stderr.
# -cpu rv32 without F and D: an rv32imac hart, so a stray float instruction traps instead of running.
# -icount shift=0: one emulated instruction = 1 ns of virtual time, and instret counts exactly.
# Exit code: the image's (sh_exit / main's return), 124 on timeout (coreutils timeout), 100 on a trap.
set -eu
if [ $# -lt 1 ]; then
  echo "usage: $0 image.elf [timeout_s]" >&2
  exit 2
fi
elf=$1
limit=${2:-${RISCV_TIMEOUT:-120}}
# --foreground: see arm/run.sh (QEMU's stdio chardev and an interactive shell's job control)
exec timeout --foreground -k 5 "$limit" "${RISCV_QEMU:-qemu-system-riscv32}" \
  -machine virt -cpu rv32,f=off,d=off,h=off -bios none -display none -monitor none -serial null \
  -chardev stdio,id=semihost -semihosting-config enable=on,target=native,chardev=semihost \
  -icount shift=0 -kernel "$elf"
