/*
 * Tiny semihosting runtime for QEMU's mps2-an385 / mps2-an386 images (see README.md).
 *
 * Output goes through ARM semihosting (BKPT 0xAB: SYS_WRITE0 / SYS_WRITEC), so images need no UART
 * driver and no newlib stdio. All formatting is integer-only: linking this module pulls in no
 * floating-point helper (__aeabi_f* / __aeabi_d*); sh_put_i64 uses libgcc's 64-bit integer division.
 */
#ifndef RNNEDGE_ARM_SEMIHOST_H
#define RNNEDGE_ARM_SEMIHOST_H

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

/* Exit code used when a fault or an unexpected exception is taken (after printing a report). */
#define SH_EXIT_FAULT 100

/* ---- instruction counting (valid when QEMU runs with -icount shift=0, as run.sh / arm.mk do)
 * SysTick runs from the 25 MHz MPS2 system clock; with -icount shift=0 every emulated instruction
 * advances virtual time by exactly 1 ns, so one SysTick tick = 40 instructions. The MPS3 AN547 (Cortex-M55)
 * clocks it at 32 MHz (arm.mk's ARM_CPU_an547 defines SH_SYSCLK_HZ): 31.25 instructions per tick.
 * sh_ticks_now(): SysTick ticks since reset (24-bit counter extended by an overflow interrupt).
 * sh_icount_now(): the same in instructions (ticks * 40, or floor(ticks * 31.25)); resolution one tick.
 * Both wrap modulo 2^32: measure with unsigned differences, e.g.
 *     uint32_t t0 = sh_icount_now(); step(...); uint32_t n = sh_icount_now() - t0;
 * Intervals up to 2^32 instructions (~4.3e9) are measured correctly. */
#ifndef SH_SYSCLK_HZ
#define SH_SYSCLK_HZ 25000000u
#endif
#define SH_INSNS_PER_TICK (1000000000u / SH_SYSCLK_HZ)
uint32_t sh_ticks_now(void);
uint32_t sh_icount_now(void);

/* ---- stack high-water mark: bytes of the stack ever written since reset (startup paints the stack) */
uint32_t sh_stack_used(void);
uint32_t sh_stack_size(void);

/* ---- CPU identification: SCB->CPUID and a name from its part number ("cortex-m3", "cortex-m4", "cortex-m55") */
uint32_t sh_cpuid(void);
const char *sh_cpu_name(void);

/* called by startup.S before main(): starts SysTick */
void sh_board_init(void);

#endif
