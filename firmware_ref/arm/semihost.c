/* Semihosting I/O, exit, SysTick instruction counter, stack high-water mark and fault report. */
#include "semihost.h"

#include <stdint.h>

/* ARM semihosting operation numbers (Semihosting for AArch32 and AArch64, v3.0) */
#define SYS_WRITEC 0x03
#define SYS_WRITE0 0x04
#define SYS_EXIT 0x18
#define SYS_EXIT_EXTENDED 0x20
#define ADP_Stopped_ApplicationExit 0x20026u
#define ADP_Stopped_RunTimeErrorUnknown 0x20023u

#define REG32(addr) (*(volatile uint32_t *)(addr))
#define SYST_CSR REG32(0xE000E010u)
#define SYST_RVR REG32(0xE000E014u)
#define SYST_CVR REG32(0xE000E018u)
#define SCB_CPUID REG32(0xE000ED00u)
#define SCB_ICSR REG32(0xE000ED04u)
#define SCB_CFSR REG32(0xE000ED28u)
#define SCB_HFSR REG32(0xE000ED2Cu)
#define SCB_MMFAR REG32(0xE000ED34u)
#define SCB_BFAR REG32(0xE000ED38u)
#define ICSR_PENDSTSET (1u << 26)
/* SysTick period 2^SH_SYSTICK_BITS ticks (24: the full counter). Smaller values only to test the wrap
   handling quickly (the demo image hello-wrap-an385 uses 10). */
#ifndef SH_SYSTICK_BITS
#define SH_SYSTICK_BITS 24
#endif
#define SYST_RELOAD ((1u << SH_SYSTICK_BITS) - 1u)

static uint32_t sh_call(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void sh_puts(const char *s) { (void)sh_call(SYS_WRITE0, s); }

void sh_putc(char c) { (void)sh_call(SYS_WRITEC, &c); }

/* writes the digits of v backwards into the end of buf[0..n), returns the first character */
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
    /* fallback for hosts without the extension: AArch32 SYS_EXIT takes the reason itself (0 or 1) */
    (void)sh_call(SYS_EXIT, (const void *)(uintptr_t)(code == 0 ? ADP_Stopped_ApplicationExit
                                                                  : ADP_Stopped_RunTimeErrorUnknown));
    for (;;) {
    }
}

/* ---------------------------------------------------------------- SysTick instruction counter */
static volatile uint32_t systick_wraps;

void SysTick_Handler(void); /* vector 15 (startup.S) */

void SysTick_Handler(void) { systick_wraps++; }

void sh_board_init(void)
{
    systick_wraps = 0u;
    SYST_CSR = 0u;
    SYST_RVR = SYST_RELOAD;
    SYST_CVR = 0u;   /* any write clears the counter; it reloads on the next tick */
    SYST_CSR = 7u;   /* ENABLE | TICKINT | CLKSOURCE = processor clock (25 MHz) */
}

/* The counter runs RELOAD, RELOAD-1, ..., 1, 0, RELOAD, ...: RELOAD + 1 = 2^SH_SYSTICK_BITS ticks per
 * period. The interrupt is pended when it reaches 0 (checked under QEMU 7.2), so a period starts at the 0:
 * ticks into it = (RELOAD + 1 - v) modulo the period. Right after sh_board_init the counter reads 0 for one
 * tick without pending the interrupt, which the same formula counts as tick 0.
 * With interrupts masked for longer than one period (2^24 ticks = 671e6 instructions) wraps are lost. */
uint32_t sh_ticks_now(void)
{
    uint32_t w, v, extra;
    do {
        w = systick_wraps;
        v = SYST_CVR;
        extra = 0u;
        if (SCB_ICSR & ICSR_PENDSTSET) {
            /* the counter reached 0 but the interrupt has not run yet: count that wrap, re-read after it */
            v = SYST_CVR;
            extra = 1u;
        }
    } while (w != systick_wraps);
    return ((w + extra) << SH_SYSTICK_BITS) + ((SYST_RELOAD + 1u - v) & SYST_RELOAD);
}

uint32_t sh_icount_now(void) { return sh_ticks_now() * SH_INSNS_PER_TICK; }

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
uint32_t sh_cpuid(void) { return SCB_CPUID; }

const char *sh_cpu_name(void)
{
    switch ((SCB_CPUID >> 4) & 0xFFFu) {
    case 0xC23u:
        return "cortex-m3";
    case 0xC24u:
        return "cortex-m4";
    case 0xC27u:
        return "cortex-m7";
    default:
        return "cortex-m?";
    }
}

/* ---------------------------------------------------------------- faults (from Default_Handler) */
void sh_fault(const uint32_t *frame, uint32_t exc_return);

void sh_fault(const uint32_t *frame, uint32_t exc_return)
{
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    sh_puts("\n*** exception ");
    sh_put_u32(ipsr & 0x1FFu);
    sh_puts(" (3=HardFault 4=MemManage 5=BusFault 6=UsageFault) CFSR=");
    sh_put_hex32(SCB_CFSR);
    sh_puts(" HFSR=");
    sh_put_hex32(SCB_HFSR);
    sh_puts(" MMFAR=");
    sh_put_hex32(SCB_MMFAR);
    sh_puts(" BFAR=");
    sh_put_hex32(SCB_BFAR);
    sh_puts(" PC=");
    sh_put_hex32(frame[6]);
    sh_puts(" LR=");
    sh_put_hex32(frame[5]);
    sh_puts(" EXC_RETURN=");
    sh_put_hex32(exc_return);
    sh_puts("\n");
    sh_exit(SH_EXIT_FAULT);
}
