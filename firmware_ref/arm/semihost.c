/* Semihosting I/O, exit, SysTick instruction counter, stack high-water mark and fault report. */
#include "semihost.h"

#include <stdint.h>

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

#include "semihost_io.inc" /* sh_puts, sh_putc, sh_put_*, sh_exit on this sh_call */

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

#if 1000000000u % SH_SYSCLK_HZ == 0u
uint32_t sh_icount_now(void) { return sh_ticks_now() * SH_INSNS_PER_TICK; }
#elif SH_SYSCLK_HZ == 32000000u
/* 10^9 / 32e6 = 125 / 4 instructions per tick: a multiply and a shift, no division inside a measured interval.
 * Differences are exact to within one instruction until the tick count wraps (2^32 ticks, 134 s of virtual time). */
uint32_t sh_icount_now(void) { return (uint32_t)(((uint64_t)sh_ticks_now() * 125u) >> 2); }
#else
#error "sh_icount_now: SH_SYSCLK_HZ must divide 10^9 or be 32 MHz"
#endif

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
    case 0xD22u:
        return "cortex-m55";
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
