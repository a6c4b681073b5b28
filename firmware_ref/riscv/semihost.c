/* Semihosting I/O and exit, the instret instruction counter, stack high-water mark and trap report (RISC-V). */
#include "semihost.h"

#include <stdint.h>

/* ARM semihosting operation numbers (Semihosting for AArch32 and AArch64, v3.0; the RISC-V binding reuses them) */
#define SYS_WRITEC 0x03
#define SYS_WRITE0 0x04
#define SYS_EXIT 0x18
#define SYS_EXIT_EXTENDED 0x20
#define ADP_Stopped_ApplicationExit 0x20026u
#define ADP_Stopped_RunTimeErrorUnknown 0x20023u

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

void sh_puts(const char *s) { (void)sh_call(SYS_WRITE0, s); }

void sh_putc(char c) { (void)sh_call(SYS_WRITEC, &c); }

/* writes the digits of v backwards, ending at end (a '\0' first), returns the first character */
static char *utoa_dec(uint32_t v, char *end)
{
    *--end = '\0';
    do {
        *--end = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0u);
    return end;
}

void sh_put_u32(uint32_t v)
{
    char buf[12];
    sh_puts(utoa_dec(v, buf + sizeof buf));
}

void sh_put_i32(int32_t v)
{
    char buf[12];
    uint32_t mag = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
    char *p = utoa_dec(mag, buf + sizeof buf);
    if (v < 0) {
        *--p = '-';
    }
    sh_puts(p);
}

void sh_put_i64(int64_t v)
{
    char buf[22];
    char *p = buf + sizeof buf;
    uint64_t mag = v < 0 ? 0u - (uint64_t)v : (uint64_t)v;
    *--p = '\0';
    do {
        *--p = (char)('0' + (unsigned)(mag % 10u));
        mag /= 10u;
    } while (mag != 0u);
    if (v < 0) {
        *--p = '-';
    }
    sh_puts(p);
}

void sh_put_hex32(uint32_t v)
{
    static const char digits[] = "0123456789abcdef";
    char buf[11];
    int i;
    buf[0] = '0';
    buf[1] = 'x';
    for (i = 0; i < 8; i++) {
        buf[2 + i] = digits[(v >> (28 - 4 * i)) & 0xFu];
    }
    buf[10] = '\0';
    sh_puts(buf);
}

void sh_exit(int code)
{
    /* SYS_EXIT_EXTENDED takes a parameter block {reason, subcode}; QEMU exits with subcode */
    uint32_t block[2];
    block[0] = ADP_Stopped_ApplicationExit;
    block[1] = (uint32_t)code;
    (void)sh_call(SYS_EXIT_EXTENDED, block);
    /* fallback for hosts without the extension: 32-bit SYS_EXIT takes the reason itself (exit 0 or 1) */
    (void)sh_call(SYS_EXIT, (const void *)(uintptr_t)(code == 0 ? ADP_Stopped_ApplicationExit
                                                                  : ADP_Stopped_RunTimeErrorUnknown));
    for (;;) {
    }
}

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
