/*
 * Minimal Cortex-M3 / Cortex-M4F startup for QEMU's mps2-an385 / mps2-an386 (see mps2.ld).
 *
 * Reset_Handler: enable the FPU (only when built with an FPU: __ARM_FP), copy .data from FLASH,
 * zero .bss, paint the stack (for sh_stack_used()), start the SysTick instruction counter
 * (sh_board_init), call main() and leave through semihosting with main's return code (sh_exit).
 * Written in assembly so that no compiler-generated floating-point instruction can run before
 * CPACR grants access to the coprocessor.
 */
    .syntax unified
    .thumb

    .equ CPACR, 0xE000ED88
    .equ STACK_PAINT, 0xA5A5A5A5

/* ---------------------------------------------------------------- vector table (at 0x0) */
    .section .vectors, "a", %progbits
    .align 2
    .global __vectors
__vectors:
    .word _estack               /*  0: initial main stack pointer */
    .word Reset_Handler         /*  1 */
    .word NMI_Handler           /*  2 */
    .word HardFault_Handler     /*  3 */
    .word MemManage_Handler     /*  4 */
    .word BusFault_Handler      /*  5 */
    .word UsageFault_Handler    /*  6 */
    .word 0, 0, 0, 0            /*  7-10 reserved */
    .word SVC_Handler           /* 11 */
    .word DebugMon_Handler      /* 12 */
    .word 0                     /* 13 reserved */
    .word PendSV_Handler        /* 14 */
    .word SysTick_Handler       /* 15: counts SysTick wraps for sh_ticks_now() */
    .rept 32                    /* 16-47: the AN385/AN386 external interrupts (none is enabled) */
    .word Default_Handler
    .endr

/* ---------------------------------------------------------------- reset */
    .section .text.Reset_Handler, "ax", %progbits
    .align 2
    .global Reset_Handler
    .type Reset_Handler, %function
    .thumb_func
Reset_Handler:
    ldr   r0, =_estack
    mov   sp, r0
#if defined(__ARM_FP)
    /* CPACR.CP10/CP11 = full access, then barriers so the next instruction sees it */
    ldr   r0, =CPACR
    ldr   r1, [r0]
    orr   r1, r1, #(0xF << 20)
    str   r1, [r0]
    dsb
    isb
#endif
    /* copy .data: [_sdata, _edata) <- _sidata */
    ldr   r0, =_sdata
    ldr   r1, =_edata
    ldr   r2, =_sidata
1:  cmp   r0, r1
    bhs   2f
    ldr   r3, [r2], #4
    str   r3, [r0], #4
    b     1b
2:  /* zero .bss: [_sbss, _ebss) */
    ldr   r0, =_sbss
    ldr   r1, =_ebss
    movs  r3, #0
3:  cmp   r0, r1
    bhs   4f
    str   r3, [r0], #4
    b     3b
4:  /* paint the stack [__stack_limit, sp) */
    ldr   r0, =__stack_limit
    mov   r1, sp
    ldr   r3, =STACK_PAINT
5:  cmp   r0, r1
    bhs   6f
    str   r3, [r0], #4
    b     5b
6:  bl    sh_board_init
    bl    main
    bl    sh_exit               /* r0 = main's return value; does not return */
7:  b     7b
    .size Reset_Handler, . - Reset_Handler

/* ---------------------------------------------------------------- faults and unused exceptions */
/* Every other exception lands in sh_fault(sp, exc_return), which prints the exception number,
   CFSR/HFSR and the stacked PC, then exits with SH_EXIT_FAULT. */
    .section .text.Default_Handler, "ax", %progbits
    .align 2
    .global Default_Handler
    .type Default_Handler, %function
    .thumb_func
Default_Handler:
    tst   lr, #4
    ite   eq
    mrseq r0, msp
    mrsne r0, psp
    mov   r1, lr
    b     sh_fault
    .size Default_Handler, . - Default_Handler

    .macro weak_handler name
    .weak \name
    .thumb_set \name, Default_Handler
    .endm

    weak_handler NMI_Handler
    weak_handler HardFault_Handler
    weak_handler MemManage_Handler
    weak_handler BusFault_Handler
    weak_handler UsageFault_Handler
    weak_handler SVC_Handler
    weak_handler DebugMon_Handler
    weak_handler PendSV_Handler
    weak_handler SysTick_Handler
