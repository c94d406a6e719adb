# usertests.s (user-usertests): an in-guest test table in the style of xv6's
# usertests.  Runs every test of `tests` in order, prints "test NAME: ok" or
# "test NAME: FAILED at check K", then "usertests: P passed, F failed", and
# exits 0 if every test passed, else 1.
#
# A test is a function () -> 0 if it passed, else the number (1, 2, ...) of
# its first failing check.  Tests spawn the helper modules user-nop,
# user-badwrite, user-badread, user-stackoverflow, user-badsyscall,
# user-badpriv and user-badheap, and reap every child they spawn.  The heap
# tests assume the break is page-aligned (it starts so, and every change here
# is whole pages).

        .include "../include/syscall.inc"
        .include "../include/layout.inc"

        .equ PAGE,     4096
        .equ UNMAPPED, 0x40000000       # between heap and stack: outside every region

# --- test-writing macros ---------------------------------------------------
# A test opens with test_begin and closes with test_end.  test_begin saves ra
# and s0..s3 and leaves a word at 0(sp) for a wait status; test_end returns 0
# if control reaches it, while every expect_* jumps to its `9:` with t1 = the
# check number when the check fails.  expect_* clobber t0 and t1.

        .macro  test_begin
        addi    sp, sp, -24
        sw      ra, 20(sp)
        sw      s0, 16(sp)
        sw      s1, 12(sp)
        sw      s2, 8(sp)
        sw      s3, 4(sp)
        .endm

        .macro  test_end
        li      t1, 0
9:      mov     a0, t1
        lw      s3, 4(sp)
        lw      s2, 8(sp)
        lw      s1, 12(sp)
        lw      s0, 16(sp)
        lw      ra, 20(sp)
        addi    sp, sp, 24
        ret
        .endm

# expect_eq reg, value, check: the register equals the constant or address.
        .macro  expect_eq reg, value, check
        li      t0, \value
        li      t1, \check
        bne     \reg, t0, 9f
        .endm

# expect_same reg1, reg2, check: the registers are equal.
        .macro  expect_same reg1, reg2, check
        li      t1, \check
        bne     \reg1, \reg2, 9f
        .endm

# expect_positive reg, check: the register is > 0 (signed).
        .macro  expect_positive reg, check
        li      t1, \check
        blez    \reg, 9f
        .endm

# call2 function, arg0, arg1: function(arg0, arg1) with constant arguments.
        .macro  call2 function, arg0, arg1
        li      a0, \arg0
        li      a1, \arg1
        call    \function
        .endm

# --- the runner --------------------------------------------------------------

        .text
        .globl  main
main:
        push    ra
        push    s0
        push    s1
        push    s2
        la      s0, tests               # s0: the table entry
        li      s1, 0                   # s1: passed
        li      s2, 0                   # s2: failed
1:      lw      t0, 4(s0)
        beqz    t0, 3f
        jalr    ra, t0, 0
        bnez    a0, 2f
        addi    s1, s1, 1
        lw      a0, 0(s0)
        call    report_ok
        addi    s0, s0, 8
        j       1b
2:      addi    s2, s2, 1
        mov     a1, a0
        lw      a0, 0(s0)
        call    report_failed
        addi    s0, s0, 8
        j       1b
3:      la      a0, summary_head
        call    print_str
        mov     a0, s1
        call    print_dec
        la      a0, summary_middle
        call    print_str
        mov     a0, s2
        call    print_dec
        la      a0, summary_tail
        call    print_str
        sltu    a0, zero, s2            # exit 1 if any failed
        pop     s2
        pop     s1
        pop     s0
        pop     ra
        ret

# report_ok(name): print "test NAME: ok\n".
report_ok:
        push    ra
        push    a0
        la      a0, test_text
        call    print_str
        pop     a0
        call    print_str
        la      a0, ok_text
        call    print_str
        pop     ra
        ret

# spawn_helper(name) -> spawn(name), but if the helper module `name` is not
# among the boot modules (-ENOENT), first print "usertests: boot module NAME is
# missing (boot it with --module guestos/build/NAME.elf)\n", so the check that
# fails next names why.
spawn_helper:
        push    ra
        push    a0
        call    spawn
        li      t0, -ENOENT
        bne     a0, t0, 1f
        la      a0, missing_text
        call    print_str
        lw      a0, 0(sp)
        call    print_str
        la      a0, missing_hint
        call    print_str
        lw      a0, 0(sp)
        call    print_str
        la      a0, missing_tail
        call    print_str
        li      a0, -ENOENT
1:      pop     t0
        pop     ra
        ret

# report_failed(name, check): print "test NAME: FAILED at check CHECK\n".
report_failed:
        push    ra
        push    a1
        push    a0
        la      a0, test_text
        call    print_str
        pop     a0
        call    print_str
        la      a0, failed_text
        call    print_str
        pop     a0
        call    print_dec
        la      a0, newline
        call    print_str
        pop     ra
        ret

# --- the tests ---------------------------------------------------------------

# getpid returns a positive pid, the same on every call.
test_getpid:
        test_begin
        call    getpid
        mov     s0, a0
        expect_positive s0, 1
        call    getpid
        expect_same a0, s0, 2
        test_end

# yield returns 0 (nothing else is runnable: it comes straight back).
test_yield:
        test_begin
        call    yield
        expect_eq a0, 0, 1
        test_end

# write of 0 bytes writes nothing and returns 0; of n bytes returns n.
test_write_counts:
        test_begin
        la      a0, newline
        li      a1, 0
        call    write
        expect_eq a0, 0, 1
        la      a0, write_line
        call    strlen
        mov     s0, a0
        mov     a1, a0
        la      a0, write_line
        call    write
        expect_same a0, s0, 2
        test_end

# write from kernel addresses fails with -EFAULT.
test_write_kernel_pointer:
        test_begin
        call2   write, KERNBASE, 8
        expect_eq a0, -EFAULT, 1
        call2   write, KERNBASE + 0x00100000, 8     # the kernel image
        expect_eq a0, -EFAULT, 2
        test_end

# write from unmapped addresses (the null guard, the hole above the heap) fails with -EFAULT.
test_write_unmapped_pointer:
        test_begin
        call2   write, 0, 8
        expect_eq a0, -EFAULT, 1
        call2   write, UNMAPPED, 8
        expect_eq a0, -EFAULT, 2
        test_end

# read into a kernel address fails with -EFAULT (checked before any input is waited for).
test_read_kernel_pointer:
        test_begin
        call2   read, KERNBASE, 8
        expect_eq a0, -EFAULT, 1
        test_end

# read into an unmapped address fails with -EFAULT.
test_read_unmapped_pointer:
        test_begin
        call2   read, UNMAPPED, 8
        expect_eq a0, -EFAULT, 1
        test_end

# spawn of a module that does not exist fails with -ENOENT.
test_spawn_missing_module:
        test_begin
        la      a0, missing_name
        call    spawn
        expect_eq a0, -ENOENT, 1
        test_end

# spawn with a name at a kernel or unmapped address fails with -EFAULT.
test_spawn_bad_pointer:
        test_begin
        li      a0, KERNBASE
        call    spawn
        expect_eq a0, -EFAULT, 1
        li      a0, UNMAPPED
        call    spawn
        expect_eq a0, -EFAULT, 2
        test_end

# wait with no children fails with -ECHILD, for any child and for a given pid.
test_wait_no_children:
        test_begin
        call2   wait, -1, 0
        expect_eq a0, -ECHILD, 1
        call    getpid
        li      a1, 0
        call    wait                    # oneself is not one's child
        expect_eq a0, -ECHILD, 2
        test_end

# sbrk(n) returns the old break and moves it by n; the pages are usable;
# sbrk(-n) moves it back.
test_sbrk_grow_and_shrink:
        test_begin
        li      a0, 0
        call    sbrk
        mov     s0, a0                  # s0: the break
        li      a0, 2 * PAGE
        call    sbrk
        expect_same a0, s0, 1
        li      a0, 0
        call    sbrk
        addi    s1, s0, 2 * PAGE        # s1: the grown break
        expect_same a0, s1, 2
        sw      s0, 0(s0)               # both pages hold what is written
        sw      s1, PAGE(s0)
        sw      s0, 2 * PAGE - 4(s0)
        lw      t2, 0(s0)
        expect_same t2, s0, 3
        lw      t2, PAGE(s0)
        expect_same t2, s1, 4
        li      a0, -2 * PAGE
        call    sbrk
        expect_same a0, s1, 5
        li      a0, 0
        call    sbrk
        expect_same a0, s0, 6
        test_end

# pages given back by sbrk and grown again read as zero.
test_sbrk_regrown_pages_are_zero:
        test_begin
        li      a0, PAGE
        call    sbrk
        mov     s0, a0
        expect_positive s0, 1
        lw      t2, 0(s0)
        expect_eq t2, 0, 2
        sw      s0, 0(s0)
        sw      s0, PAGE - 4(s0)
        li      a0, -PAGE
        call    sbrk
        li      a0, PAGE
        call    sbrk
        expect_same a0, s0, 3
        lw      t2, 0(s0)
        expect_eq t2, 0, 4
        lw      t2, PAGE - 4(s0)
        expect_eq t2, 0, 5
        li      a0, -PAGE
        call    sbrk
        test_end

# sbrk past the stack fails with -ENOMEM and leaves the break alone.
test_sbrk_too_much:
        test_begin
        li      a0, 0
        call    sbrk
        mov     s0, a0
        li      a0, USTACK_TOP - USER_BASE
        call    sbrk
        expect_eq a0, -ENOMEM, 1
        li      a0, 0
        call    sbrk
        expect_same a0, s0, 2
        test_end

# a spawned child gets another pid, and wait returns its pid and exit status.
test_spawn_and_wait:
        test_begin
        la      a0, nop_name
        call    spawn_helper
        mov     s0, a0                  # s0: the child
        expect_positive s0, 1
        call    getpid
        li      t1, 2
        beq     a0, s0, 9f
        mov     a0, s0
        mov     a1, sp
        call    wait
        expect_same a0, s0, 3
        lw      t2, 0(sp)
        andi    t3, s0, 0x7F            # user-nop's status
        expect_same t2, t3, 4
        test_end

# wait(pid) waits for that child, not another one.
test_wait_for_a_given_pid:
        test_begin
        la      a0, nop_name
        call    spawn_helper
        mov     s0, a0
        expect_positive s0, 1
        la      a0, nop_name
        call    spawn_helper
        mov     s1, a0
        expect_positive s1, 2
        mov     a0, s1
        li      a1, 0
        call    wait
        expect_same a0, s1, 3
        mov     a0, s0
        li      a1, 0
        call    wait
        expect_same a0, s0, 4
        call2   wait, -1, 0
        expect_eq a0, -ECHILD, 5
        test_end

# expect_killed(name) -> 0 if the child running module `name` is killed (its
# status is STATUS_KILLED), else the failing check.
expect_killed:
        test_begin
        call    spawn_helper
        mov     s0, a0
        expect_positive s0, 1
        mov     a0, s0
        mov     a1, sp
        call    wait
        expect_same a0, s0, 2
        lw      t2, 0(sp)
        expect_eq t2, STATUS_KILLED, 3
        test_end

# A child is killed for: a store to a kernel address,
test_kill_write_to_kernel:
        la      a0, badwrite_name
        j       expect_killed

# a load from an unmapped address,
test_kill_read_unmapped:
        la      a0, badread_name
        j       expect_killed

# running its stack past USTACK_SIZE,
test_kill_stack_overflow:
        la      a0, stackoverflow_name
        j       expect_killed

# a system call number that does not exist,
test_kill_bad_syscall:
        la      a0, badsyscall_name
        j       expect_killed

# a privileged instruction,
test_kill_privileged_instruction:
        la      a0, badpriv_name
        j       expect_killed

# a store to a heap page that sbrk gave back.
test_kill_heap_access_after_shrink:
        la      a0, badheap_name
        j       expect_killed

        .rodata
        .balign 4
# tests: (name, function) pairs, ending with (0, 0).
tests:
        .word   name_getpid, test_getpid
        .word   name_yield, test_yield
        .word   name_write_counts, test_write_counts
        .word   name_write_kernel_pointer, test_write_kernel_pointer
        .word   name_write_unmapped_pointer, test_write_unmapped_pointer
        .word   name_read_kernel_pointer, test_read_kernel_pointer
        .word   name_read_unmapped_pointer, test_read_unmapped_pointer
        .word   name_spawn_missing_module, test_spawn_missing_module
        .word   name_spawn_bad_pointer, test_spawn_bad_pointer
        .word   name_wait_no_children, test_wait_no_children
        .word   name_sbrk_grow_and_shrink, test_sbrk_grow_and_shrink
        .word   name_sbrk_regrown_pages_are_zero, test_sbrk_regrown_pages_are_zero
        .word   name_sbrk_too_much, test_sbrk_too_much
        .word   name_spawn_and_wait, test_spawn_and_wait
        .word   name_wait_for_a_given_pid, test_wait_for_a_given_pid
        .word   name_kill_write_to_kernel, test_kill_write_to_kernel
        .word   name_kill_read_unmapped, test_kill_read_unmapped
        .word   name_kill_stack_overflow, test_kill_stack_overflow
        .word   name_kill_bad_syscall, test_kill_bad_syscall
        .word   name_kill_privileged_instruction, test_kill_privileged_instruction
        .word   name_kill_heap_access_after_shrink, test_kill_heap_access_after_shrink
        .word   0, 0

name_getpid:                    .asciz  "getpid"
name_yield:                     .asciz  "yield"
name_write_counts:              .asciz  "write_counts"
name_write_kernel_pointer:      .asciz  "write_kernel_pointer"
name_write_unmapped_pointer:    .asciz  "write_unmapped_pointer"
name_read_kernel_pointer:       .asciz  "read_kernel_pointer"
name_read_unmapped_pointer:     .asciz  "read_unmapped_pointer"
name_spawn_missing_module:      .asciz  "spawn_missing_module"
name_spawn_bad_pointer:         .asciz  "spawn_bad_pointer"
name_wait_no_children:          .asciz  "wait_no_children"
name_sbrk_grow_and_shrink:      .asciz  "sbrk_grow_and_shrink"
name_sbrk_regrown_pages_are_zero: .asciz "sbrk_regrown_pages_are_zero"
name_sbrk_too_much:             .asciz  "sbrk_too_much"
name_spawn_and_wait:            .asciz  "spawn_and_wait"
name_wait_for_a_given_pid:      .asciz  "wait_for_a_given_pid"
name_kill_write_to_kernel:      .asciz  "kill_write_to_kernel"
name_kill_read_unmapped:        .asciz  "kill_read_unmapped"
name_kill_stack_overflow:       .asciz  "kill_stack_overflow"
name_kill_bad_syscall:          .asciz  "kill_bad_syscall"
name_kill_privileged_instruction: .asciz "kill_privileged_instruction"
name_kill_heap_access_after_shrink: .asciz "kill_heap_access_after_shrink"

nop_name:               .asciz  "user-nop"
badwrite_name:          .asciz  "user-badwrite"
badread_name:           .asciz  "user-badread"
stackoverflow_name:     .asciz  "user-stackoverflow"
badsyscall_name:        .asciz  "user-badsyscall"
badpriv_name:           .asciz  "user-badpriv"
badheap_name:           .asciz  "user-badheap"
missing_name:           .asciz  "user-no-such-program"

test_text:              .asciz  "test "
write_line:             .asciz  "usertests: this line is written with one write\n"
ok_text:                .asciz  ": ok\n"
failed_text:            .asciz  ": FAILED at check "
missing_text:           .asciz  "usertests: boot module "
missing_hint:           .asciz  " is missing (boot it with --module guestos/build/"
missing_tail:           .asciz  ".elf)\n"
newline:                .asciz  "\n"
summary_head:           .asciz  "usertests: "
summary_middle:         .asciz  " passed, "
summary_tail:           .asciz  " failed\n"
