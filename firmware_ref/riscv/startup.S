/*
 * Minimal rv32 startup for QEMU's `virt` machine, machine mode, one hart (see virt.ld).
 *
 * QEMU loads the whole ELF into RAM (-bios none -kernel image.elf) and jumps to _start: no .data copy is needed.
 * _start: global pointer, stack, trap vector (sh_trap reports and exits), zero .bss, paint the stack (for
 * sh_stack_used()), call main() and leave through semihosting with main's return code (sh_exit).
 */
    .equ STACK_PAINT, 0xA5A5A5A5

    .section .text.start, "ax", %progbits
    .globl _start
    .type _start, @function
_start:
    .option push
    .option norelax
    la    gp, __global_pointer$
    .option pop
    la    sp, _estack
    la    t0, trap_entry
    .option push
    .option arch, +zicsr
    csrw  mtvec, t0
    .option pop
    /* zero .bss: [_sbss, _ebss) */
    la    t0, _sbss
    la    t1, _ebss
1:  bgeu  t0, t1, 2f
    sw    zero, 0(t0)
    addi  t0, t0, 4
    j     1b
2:  /* paint the stack [__stack_limit, sp) */
    la    t0, __stack_limit
    li    t2, STACK_PAINT
3:  bgeu  t0, sp, 4f
    sw    t2, 0(t0)
    addi  t0, t0, 4
    j     3b
4:  call  main
    call  sh_exit               /* a0 = main's return value; does not return */
5:  j     5b
    .size _start, . - _start

/* mtvec needs 4-byte alignment (direct mode); the handler never returns, so no register is saved */
    .section .text.trap, "ax", %progbits
    .balign 4
trap_entry:
    la    sp, _estack
    j     sh_trap
