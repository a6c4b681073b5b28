/*
 * Demo image for QEMU's mps2-an385 / mps2-an386 (see ../README.md): prints the CPU, a 64-bit integer
 * multiply-shift and a 64-bit division (libgcc's __aeabi_ldivmod / __aeabi_uldivmod),
 * the measured instruction count of a loop of known length, the stack high-water mark, and exits with
 * HELLO_EXIT_CODE (default 0).
 * On an FPU build (__ARM_FP) it also does a single-precision multiply, which faults (NOCP) unless the
 * reset handler enabled the FPU. The Cortex-M3 build uses no float at all.
 */
#include <stdint.h>

#include "semihost.h"

#ifndef HELLO_EXIT_CODE
#define HELLO_EXIT_CODE 0
#endif

#define LOOP_ITERS 100000u

/* volatile inputs so that the compiler cannot fold the 64-bit arithmetic away */
static volatile int64_t mul_a = -8589934597LL;   /* -(2^33 + 5) */
static volatile int64_t mul_b = 1000000007LL;
static volatile int32_t mul_shift = 24;
static volatile int64_t div_by = 1000;

/* exactly 2 instructions per iteration (subs + bne) */
static void __attribute__((noinline)) known_loop(uint32_t n)
{
    __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
}

int main(void)
{
    int64_t prod;
    int64_t shifted;
    int64_t quot;
    uint32_t t0, t1, empty, loop;
    uint32_t at_main = sh_icount_now(); /* since sh_board_init started SysTick: ~0 */

    sh_puts("hello from ");
    sh_puts(sh_cpu_name());
    sh_puts(" cpuid=");
    sh_put_hex32(sh_cpuid());
    sh_puts("\n");

    prod = mul_a * mul_b;            /* 64x64 multiply (inlined umull/mla on v7-M, __aeabi_lmul elsewhere) */
    shifted = prod >> mul_shift;     /* arithmetic shift by a variable amount */
    quot = prod / div_by;            /* __aeabi_ldivmod */
    sh_puts("i64 mulshift: ");
    sh_put_i64(prod);
    sh_puts(" >> ");
    sh_put_i32(mul_shift);
    sh_puts(" = ");
    sh_put_i64(shifted);
    sh_puts(" ; / ");
    sh_put_i64(div_by);
    sh_puts(" = ");
    sh_put_i64(quot);
    sh_puts("\n");

    t0 = sh_icount_now();
    t1 = sh_icount_now();
    empty = t1 - t0;
    t0 = sh_icount_now();
    known_loop(LOOP_ITERS);
    t1 = sh_icount_now();
    loop = t1 - t0;
    sh_puts("icount at main: ");
    sh_put_u32(at_main);
    sh_puts("\nicount empty: ");
    sh_put_u32(empty);
    sh_puts("\nicount loop: ");
    sh_put_u32(loop);
    sh_puts(" expected: ");
    sh_put_u32(2u * LOOP_ITERS);
    sh_puts("\n");

#if defined(__ARM_FP)
    {
        volatile float x = 1.5f;
        float y = x * x * 100.0f;   /* vmul.f32: needs CPACR set by the reset handler */
        sh_puts("fpu: 1.5*1.5*100 = ");
        sh_put_i32((int32_t)y);
        sh_puts("\n");
    }
#endif

    sh_puts("stack used: ");
    sh_put_u32(sh_stack_used());
    sh_puts(" of ");
    sh_put_u32(sh_stack_size());
    sh_puts("\nexit ");
    sh_put_i32(HELLO_EXIT_CODE);
    sh_puts("\n");
    return HELLO_EXIT_CODE;
}
