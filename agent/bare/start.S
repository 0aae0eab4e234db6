/* Entry of the bare guest. The loader sets RSP and RDI (the mailbox) and
 * enters here at CPL3 in long mode; kf_main never returns. */
    .section .text.start, "ax"
    .globl _start
_start:
    and $-16, %rsp
    call kf_main
1:  mov $0x0f00, %dx
    mov $3, %eax          /* KF_SIGNAL_PANIC */
    out %eax, %dx
    jmp 1b
    .section .note.GNU-stack, "", @progbits
