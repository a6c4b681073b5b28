#!/bin/sh
# Run an mps2 / mps3 image under QEMU and return its semihosting exit code.
#   usage: run.sh BOARD IMAGE.elf [TIMEOUT_SECONDS]     BOARD: an385 (Cortex-M3) | an386 (Cortex-M4F) | an547 (Cortex-M55)
# Program output (SYS_WRITE0/SYS_WRITEC) goes to stdout, QEMU's own messages to stderr.
# -icount shift=0: one emulated instruction = 1 ns of virtual time (deterministic; see README.md).
# Exit code: the image's (sh_exit / main's return), 124 on timeout (coreutils timeout), 100 on a fault.
set -eu
if [ $# -lt 2 ]; then
  echo "usage: $0 an385|an386|an547 image.elf [timeout_s]" >&2
  exit 2
fi
board=$1
elf=$2
limit=${3:-${ARM_TIMEOUT:-120}}
case "$board" in
  an385) machine=mps2-an385 ;;
  an386) machine=mps2-an386 ;;
  an547) machine=mps3-an547 ;;
  *) echo "run.sh: unknown board '$board' (an385 | an386 | an547)" >&2; exit 2 ;;
esac
# --foreground: QEMU's stdio chardev may touch the terminal; without it timeout's own process group
# would be a background job of an interactive shell and QEMU would stop on SIGTTOU.
exec timeout --foreground -k 5 "$limit" "${ARM_QEMU:-qemu-system-arm}" \
  -machine "$machine" -display none -monitor none -serial null \
  -chardev stdio,id=semihost -semihosting-config enable=on,target=native,chardev=semihost \
  -icount shift=0 -kernel "$elf"
