# access_matrix.s: the MMU permission matrix of tests/machine/test_mmu.py,
# run inside a guest kernel.
#
# For every case of access_cases(), in the same order (PDE flags, PTE flags,
# PTE D, access read/write/fetch, mode kernel/user, the last varying fastest),
# it points PDE 1 at test_table with the PDE flags under test and
# test_table[0] at test_frame with the PTE flags, invalidates TEST_VA in the
# TLB, then performs the access at TEST_VA in the given mode: a kernel access
# jumps to a stub, a user access enters the same stub with rfe.  The stubs end
# in `syscall` (a fetch executes the `syscall` word stored in test_frame), so
# every case ends with a trap: the system call when the access succeeded, the
# page fault otherwise.  It prints one line per case:
#
#   PDE PTE A M: CAUSE BADADDR PDE' PTE'
#
# PDE, PTE: the flags under test (2 hex digits); A: r, w or f; M: k or u;
# CAUSE: 8 hex digits, 00000000 if the access succeeded; BADADDR: 8 hex digits,
# or - if it succeeded; PDE', PTE': the entries' flags afterwards.  A case
# whose effect is wrong (a read that did not load DATA_WORD, a write that did
# not store STORED, a fault that stored anyway or stopped at the wrong pc)
# gets " effect-mismatch" appended.  The transcript is framed by
# "access matrix: start" and "access matrix: done"; exit code 77.
#
# Virtual layout (paging on):
#
#   0x00000000-0x003FFFFF  low RAM identity, kernel-only, except the stub page (U)
#   0x00400000             TEST_VA: PDE 1 -> test_table, PTE 0 -> test_frame (flags under test)
#   0xF0000000-0xF0003FFF  UART, timer, disk, power: kernel-only

        .include "kernel.inc"

        .equ TEST_VA,    0x00400000     # tests/machine/test_mmu.py: PDE 1, PTE 0
        .equ TEST_PDE,   (TEST_VA >> 22) * 4
        .equ DATA_WORD,  0x11111111
        .equ STORED,     0x5A5A5A5A
        .equ CASES,      16 * 16 * 2 * 3 * 2
        .equ ACCESS_READ, 0
        .equ ACCESS_WRITE, 1
        .equ ACCESS_FETCH, 2
        .equ EXIT_CODE,  77

        .text
        .globl _start
# _start: entry from the boot state (kernel mode, paging off).
_start:
        la      sp, stack_top
        la      t0, trap_entry
        mtcr    tvec, t0
        call    build_page_tables
        la      t0, page_dir
        ori     t0, t0, PTB_ENABLE
        mtcr    ptb, t0
        print   "access matrix: start\n"
        li      s0, 0
1:      mov     a0, s0
        call    run_case
        addi    s0, s0, 1
        li      t0, CASES
        bne     s0, t0, 1b
        print   "access matrix: done\n"
        li      a0, EXIT_CODE
        j       power_off

# build_page_tables: pt_low identity (kernel RW, U on the stub page), pt_mmio,
# and PDE 0 (P W U) and the MMIO PDE in page_dir.  Clobbers t0-t2.  Paging off.
build_page_tables:
        fill_table pt_low, PTE_P | PTE_W, 1024
        set_user pt_low, stub_page
        fill_table pt_mmio, UART_TX | PTE_P | PTE_W, MMIO_PAGES
        la      t0, page_dir
        la      t1, pt_low
        ori     t1, t1, PTE_P | PTE_W | PTE_U
        sw      t1, 0(t0)
        la      t1, pt_mmio
        ori     t1, t1, PTE_P | PTE_W
        sw      t1, PDE_MMIO(t0)
        ret

# level_flags(a0 = i in 0..15): a0 = access_cases()'s level[i], the product of
# (0, P), (0, W), (0, U), (0, A) with P varying slowest.  Clobbers t0, t1.
level_flags:
        andi    t0, a0, 8
        srli    t0, t0, 3               # i & 8 -> P (1)
        andi    t1, a0, 4
        srli    t1, t1, 1               # i & 4 -> W (2)
        or      t0, t0, t1
        andi    t1, a0, 2
        slli    t1, t1, 1               # i & 2 -> U (4)
        or      t0, t0, t1
        andi    a0, a0, 1
        slli    a0, a0, 3               # i & 1 -> A (8)
        or      a0, a0, t0
        ret

# decode_case(a0 = n in 0..CASES-1): store case n's PDE flags, PTE flags,
# access (ACCESS_*) and user (0/1) in case_pde, case_pte, case_access,
# case_user.  Clobbers t0-t3, a0.
decode_case:
        push    ra
        la      t3, case_pde
        andi    t0, a0, 1
        sw      t0, 12(t3)              # case_user: n % 2
        srli    a0, a0, 1
        li      t1, 3
        remu    t0, a0, t1
        sw      t0, 8(t3)               # case_access: n / 2 % 3
        divu    a0, a0, t1
        andi    t2, a0, 1               # dirty: n / 6 % 2
        slli    t2, t2, 4               # PTE_D
        srli    a0, a0, 1
        andi    t1, a0, 15
        srli    a0, a0, 4               # the PDE's level index: n / 192
        push    t2
        push    a0
        mov     a0, t1
        call    level_flags
        pop     t1
        pop     t2
        or      a0, a0, t2
        la      t3, case_pde
        sw      a0, 4(t3)               # case_pte
        mov     a0, t1
        call    level_flags
        la      t3, case_pde
        sw      a0, 0(t3)
        pop     ra
        ret

# run_case(a0 = n): set up, run and print case n.  Preserves s0-s3.
run_case:
        push    ra
        push    s0
        push    s1
        push    s2
        push    s3
        call    decode_case
        call    prepare_case
        la      t0, probe_sp            # the trap handler resumes at probe_done with this sp
        sw      sp, 0(t0)
        la      t0, case_access
        lw      t1, 0(t0)
        slli    t1, t1, 2
        la      t2, stubs
        add     t2, t2, t1
        lw      t2, 0(t2)               # the stub for this access
        lw      t1, 4(t0)               # case_user
        li      a0, TEST_VA
        li      a1, STORED
        li      s0, 0
        bnez    t1, 1f
        jr      t2                      # kernel mode: straight in
1:      mtcr    epc, t2
        li      t0, STATUS_KM           # PKM = 0, PIE = 0: rfe enters user mode, IE off
        mtcr    status, t0
        rfe
probe_done:
        call    print_case
        pop     s3
        pop     s2
        pop     s1
        pop     s0
        pop     ra
        ret

# prepare_case: write the PDE and PTE under test, fill test_frame (the syscall
# word for a fetch, DATA_WORD otherwise), invalidate TEST_VA.  Clobbers t0-t2.
prepare_case:
        la      t0, case_pde
        lw      t1, 0(t0)
        la      t2, test_table
        or      t1, t1, t2
        la      t2, page_dir
        sw      t1, TEST_PDE(t2)
        lw      t1, 4(t0)
        la      t2, test_frame
        or      t1, t1, t2
        la      t2, test_table
        sw      t1, 0(t2)
        lw      t1, 8(t0)
        li      t2, ACCESS_FETCH
        li      t0, DATA_WORD
        bne     t1, t2, 1f
        la      t0, stub_syscall
        lw      t0, 0(t0)               # the encoding of `syscall`
1:      la      t2, test_frame
        sw      t0, 0(t2)
        li      t0, TEST_VA
        tlbinv  t0
        ret

# print_case: print the case line from case_* and trap_* (see the file header).
# Clobbers t0-t3, a0, a1, s0, s1.
print_case:
        push    ra
        la      s0, case_pde
        lw      a0, 0(s0)
        li      a1, 2
        call    put_hex_digits
        li      a0, ' '
        call    putc
        lw      a0, 4(s0)
        li      a1, 2
        call    put_hex_digits
        li      a0, ' '
        call    putc
        la      t0, access_letters
        lw      t1, 8(s0)
        add     t0, t0, t1
        lbu     a0, 0(t0)
        call    putc
        li      a0, ' '
        call    putc
        la      t0, mode_letters
        lw      t1, 12(s0)
        add     t0, t0, t1
        lbu     a0, 0(t0)
        call    putc
        call    check_effect
        mov     s1, a0                  # 1: the effect was wrong
        call    print_result
        li      a0, ' '
        call    putc
        la      t0, page_dir
        lw      a0, TEST_PDE(t0)
        andi    a0, a0, PTE_FLAGS
        li      a1, 2
        call    put_hex_digits
        li      a0, ' '
        call    putc
        la      t0, test_table
        lw      a0, 0(t0)
        andi    a0, a0, PTE_FLAGS
        li      a1, 2
        call    put_hex_digits
        beqz    s1, 1f
        print   " effect-mismatch"
1:      li      a0, '\n'
        call    putc
        pop     ra
        ret

# print_result: ": CAUSE BADADDR" for a fault, ": 00000000 -" for a success.
# Clobbers t0-t2, a0, a1.
print_result:
        push    ra
        print   ": "
        la      t0, trap_cause
        lw      a0, 0(t0)
        li      t1, EXC_SYSCALL
        bne     a0, t1, 1f
        li      a0, 0
        li      a1, 8
        call    put_hex_digits
        print   " -"
        j       2f
1:      li      a1, 8
        call    put_hex_digits
        li      a0, ' '
        call    putc
        la      t0, trap_badaddr
        lw      a0, 0(t0)
        li      a1, 8
        call    put_hex_digits
2:      pop     ra
        ret

# check_effect: a0 = 0 if the trap that ended the case fits its outcome, 1 if
# not.  Success (the system call): a read loaded DATA_WORD, a write stored
# STORED, and the syscall ran at the stub's end (at TEST_VA for a fetch).
# A page fault: epc is the accessing instruction (TEST_VA for a fetch) and
# test_frame does not hold STORED.  Any other cause is wrong.  Clobbers t0-t2.
check_effect:
        la      t0, case_access
        lw      t0, 0(t0)
        slli    t0, t0, 2
        la      t1, trap_cause
        lw      t1, 0(t1)
        li      t2, EXC_SYSCALL
        beq     t1, t2, 2f
        andi    t1, t1, CAUSE_CODE_MASK
        li      t2, EXC_PAGE_FAULT
        bne     t1, t2, 9f
        la      t1, fault_pcs           # a fault
        add     t1, t1, t0
        lw      t1, 0(t1)
        la      t2, trap_epc
        lw      t2, 0(t2)
        bne     t1, t2, 9f
        la      t1, test_frame
        lw      t1, 0(t1)
        li      t2, STORED
        beq     t1, t2, 9f
        j       8f
2:      la      t1, syscall_pcs         # a success
        add     t1, t1, t0
        lw      t1, 0(t1)
        la      t2, trap_epc
        lw      t2, 0(t2)
        bne     t1, t2, 9f
        li      t1, ACCESS_READ * 4
        bne     t0, t1, 3f
        la      t1, trap_s0
        lw      t1, 0(t1)
        li      t2, DATA_WORD
        bne     t1, t2, 9f
3:      li      t1, ACCESS_WRITE * 4
        bne     t0, t1, 8f
        la      t1, test_frame
        lw      t1, 0(t1)
        li      t2, STORED
        bne     t1, t2, 9f
8:      li      a0, 0
        ret
9:      li      a0, 1
        ret

# trap_entry: the trap vector.  Every trap ends the running case: record
# cause, epc, badaddr and s0, then resume run_case at probe_done on its stack
# in kernel mode (IE = 0).  Registers of the stub are not preserved.
trap_entry:
        la      t0, trap_cause
        mfcr    t1, cause
        sw      t1, 0(t0)
        mfcr    t1, epc
        sw      t1, 4(t0)
        mfcr    t1, badaddr
        sw      t1, 8(t0)
        sw      s0, 12(t0)
        la      t0, probe_sp
        lw      sp, 0(t0)
        j       probe_done

# --- the stubs: the one page user mode may fetch from ---------------------------------------
# a0 = TEST_VA, a1 = STORED.

        .balign PAGE_SIZE
stub_page:
read_stub:
        lw      s0, 0(a0)
read_done:
        syscall
write_stub:
        sw      a1, 0(a0)
write_done:
        syscall
fetch_stub:
        jalr    zero, a0, 0
stub_syscall:
        syscall                         # never reached: copied into test_frame
        .balign PAGE_SIZE

        .rodata
        .balign 4
stubs:          .word read_stub, write_stub, fetch_stub         # by ACCESS_*
fault_pcs:      .word read_stub, write_stub, TEST_VA            # epc of a fault
syscall_pcs:    .word read_done, write_done, TEST_VA            # epc of a success
access_letters: .ascii "rwf"
mode_letters:   .ascii "ku"

        .data
        .balign 4
case_pde:       .word 0                 # keep these four in this order
case_pte:       .word 0
case_access:    .word 0
case_user:      .word 0
trap_cause:     .word 0                 # keep these four in this order
trap_epc:       .word 0
trap_badaddr:   .word 0
trap_s0:        .word 0
probe_sp:       .word 0

        .bss
        .balign PAGE_SIZE
page_dir:       .space PAGE_SIZE
pt_low:         .space PAGE_SIZE
pt_mmio:        .space PAGE_SIZE
test_table:     .space PAGE_SIZE
test_frame:     .space PAGE_SIZE
stack:          .space PAGE_SIZE
stack_top:
