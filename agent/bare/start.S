/* Entry of the bare guest. The loader sets RSP and RDI (the boot info at
 * KF_BARE_BOOT_GPA) and enters here at CPL3 in long mode; kf_main never
 * returns. If it did: KF_SIGNAL_PANIC forever, panic_code left as it was. */
    .section .text.start, "ax"
    .globl _start
_start:
    and $-16, %rsp
    cld
    mov %rdi, %rbx        /* the boot info, kept across the .bss clear */
    lea __bss_start, %rdi /* .bss is not in the flat image: zero it */
    lea __bss_end, %rcx
    sub %rdi, %rcx
    xor %eax, %eax
    rep stosb
    mov %rbx, %rdi
    call kf_main
1:  mov $0x0f00, %dx
    mov $3, %eax          /* KF_SIGNAL_PANIC */
    out %eax, %dx
    jmp 1b
    .section .note.GNU-stack, "", @progbits
