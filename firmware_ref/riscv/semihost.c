/* Semihosting I/O and exit, the instret instruction counter, stack high-water mark and trap report (RISC-V). */
#include "semihost.h"

#include <stdint.h>

/* The RISC-V semihosting trap: ebreak between two hint instructions, all three uncompressed (norvc) and in one
 * page (the 16-byte alignment), or QEMU takes it for a plain breakpoint. a0 = operation, a1 = argument. */
static uint32_t sh_call(uint32_t op, const void *arg)
{
    register uint32_t a0 __asm__("a0") = op;
    register const void *a1 __asm__("a1") = arg;
    __asm__ volatile(".option push\n\t"
                     ".option norvc\n\t"
                     ".balign 16\n\t"
                     "slli x0, x0, 0x1f\n\t"
                     "ebreak\n\t"
                     "srai x0, x0, 7\n\t"
                     ".option pop"
                     : "+r"(a0)
                     : "r"(a1)
                     : "memory");
    return a0;
}

#include "../arm/semihost_io.inc" /* sh_puts, sh_putc, sh_put_*, sh_exit on this sh_call */

/* csrr: gcc 12 built for rv32imac (the multilib picolibc has) leaves Zicsr out of the assembler's ISA string */
#define CSR_READ(csr, out) \
    __asm__ volatile(".option push\n\t.option arch, +zicsr\n\tcsrr %0, " csr "\n\t.option pop" : "=r"(out))

/* ---------------------------------------------------------------- instruction counter */
uint32_t sh_icount_now(void)
{
    uint32_t n;
    CSR_READ("minstret", n);
    return n;
}

/* ---------------------------------------------------------------- stack high-water mark */
extern uint32_t __stack_limit[];
extern uint32_t _estack[];

uint32_t sh_stack_size(void) { return (uint32_t)((uintptr_t)_estack - (uintptr_t)__stack_limit); }

uint32_t sh_stack_used(void)
{
    const volatile uint32_t *p = __stack_limit;
    while (p < _estack && *p == 0xA5A5A5A5u) {
        p++;
    }
    return (uint32_t)((uintptr_t)_estack - (uintptr_t)p);
}

/* ---------------------------------------------------------------- CPU identification */
uint32_t sh_cpuid(void)
{
    uint32_t misa;
    CSR_READ("misa", misa);
    return misa;
}

/* "rv32" (MXL 1) then the extension letters of misa in the ISA string's canonical order, e.g. "rv32imac" */
const char *sh_cpu_name(void)
{
    static const char order[] = "iemafdqcbv";
    static char name[4 + sizeof order];
    uint32_t misa = sh_cpuid();
    char *p = name;
    const char *e;
    *p++ = 'r';
    *p++ = 'v';
    *p++ = (misa >> 30) == 1u ? '3' : '?';
    *p++ = (misa >> 30) == 1u ? '2' : '?';
    for (e = order; *e != '\0'; ++e) {
        if (misa & (1u << (*e - 'a'))) {
            *p++ = *e;
        }
    }
    *p = '\0';
    return name;
}

/* ---------------------------------------------------------------- traps (mtvec, startup.S) */
void sh_trap(void);

void sh_trap(void)
{
    uint32_t mcause;
    uint32_t mepc;
    uint32_t mtval;
    CSR_READ("mcause", mcause);
    CSR_READ("mepc", mepc);
    CSR_READ("mtval", mtval);
    sh_puts("\n*** trap mcause=");
    sh_put_hex32(mcause);
    sh_puts(" (1=instruction access 2=illegal instruction 5=load access 7=store access) mepc=");
    sh_put_hex32(mepc);
    sh_puts(" mtval=");
    sh_put_hex32(mtval);
    sh_puts("\n");
    sh_exit(SH_EXIT_FAULT);
}
