/*
 * Tiny semihosting runtime for QEMU's RISC-V `virt` machine (rv32imac, machine mode; see riscv.mk).
 *
 * The same functions as arm/semihost.h, so the Cortex-M test programs (tests/arm_test.c, arm_test_float.c) and
 * examples/main.c build unchanged for RISC-V. Output goes through RISC-V semihosting (the ARM semihosting calls,
 * trapped by the `slli x0,x0,0x1f; ebreak; srai x0,x0,7` sequence): no UART driver, no stdio, integer-only
 * formatting; sh_put_i64 uses libgcc's 64-bit division.
 */
#ifndef RNNEDGE_RISCV_SEMIHOST_H
#define RNNEDGE_RISCV_SEMIHOST_H

#include <stdint.h>

/* ---- output (each call is one semihosting trap; strings are written as they are, no newline added) */
void sh_puts(const char *s);        /* SYS_WRITE0 */
void sh_putc(char c);               /* SYS_WRITEC */
void sh_put_i32(int32_t v);         /* signed decimal, e.g. -42 */
void sh_put_u32(uint32_t v);        /* unsigned decimal */
void sh_put_i64(int64_t v);         /* signed decimal */
void sh_put_hex32(uint32_t v);      /* 0x%08x, e.g. 0x0000002a */

/* ---- exit: SYS_EXIT_EXTENDED(ADP_Stopped_ApplicationExit, code); QEMU exits with `code` (0..255).
   Returning from main() does the same with main's return value. */
void sh_exit(int code) __attribute__((noreturn));

/* Exit code used when a trap is taken (after printing mcause, mepc, mtval). */
#define SH_EXIT_FAULT 100

/* ---- instruction counting: the `instret` counter (low 32 bits; 1-instruction resolution). QEMU counts exactly
 * only with -icount (run.sh passes -icount shift=0); without it the counter follows the host clock. Measure with
 * unsigned differences: uint32_t t0 = sh_icount_now(); step(...); uint32_t n = sh_icount_now() - t0; */
uint32_t sh_icount_now(void);

/* ---- stack high-water mark: bytes of the stack ever written since reset (startup paints the stack) */
uint32_t sh_stack_used(void);
uint32_t sh_stack_size(void);

/* ---- CPU identification: the misa CSR and a name from its base width and extension bits ("rv32imac") */
uint32_t sh_cpuid(void);
const char *sh_cpu_name(void);

#endif
