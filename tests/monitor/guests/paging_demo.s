# paging_demo.s: a small paging kernel: demand-zero pages, timer ticks, a
# user-mode routine with system calls.
#
# It installs a trap vector, builds page tables (low 4 MiB identity-mapped
# kernel-only except one user code page and one user stack page; the MMIO
# pages kernel-only; a 16-page demand-zero region with an empty page table),
# turns paging on and starts a periodic timer that only counts ticks.  The
# kernel then touches 4 fresh pages of the region (2 reads first, 2 writes
# first): each access faults, the handler maps a zeroed frame and retries it.
# A user routine prints through `syscall`, touches 4 more fresh pages and
# sums what it wrote; a second user routine reads a kernel page, which the
# kernel reports and kills.  The kernel checksums every mapped page (the frame
# pool is poisoned first, so a frame handed out unzeroed shows), waits for at
# least 3 ticks and powers off with exit code 42.  The transcript never
# depends on when the timer fires (see paging_demo.expected).
#
# Virtual layout (paging on):
#
#   0x00000000-0x003FFFFF  low RAM, identity, kernel-only (PDE 0 -> pt_low), except:
#       user_page, user_stack      the same, with U
#   0x00800000-0x0080FFFF  demand-zero region (PDE 2 -> dz_table, PTEs filled on fault)
#   0xF0000000-0xF0003FFF  UART, timer, disk, power: kernel-only (PDE 960 -> pt_mmio)
#
# Physical frames for the region come from boot-info first_free upwards and
# must stay below 4 MiB (the kernel zeroes them through its identity map).

        .include "kernel.inc"

        .equ DZ_BASE,    0x00800000
        .equ DZ_PAGES,   16
        .equ DZ_END,     DZ_BASE + DZ_PAGES * PAGE_SIZE
        .equ DZ_PDE,     (DZ_BASE >> 22) * 4
        .equ POOL_PAGES, DZ_PAGES
        .equ POOL_POISON, 0xA5A5A5A5
        .equ LOW_MAP_END, 0x00400000
        .equ TICK_INTERVAL, 1500
        .equ MIN_TICKS,  3
        .equ FRAME_SIZE, 64             # trap frame: slot 0 epc, slot n register rn
        .equ SYS_PUTS,    1             # syscalls: a0 = number
        .equ SYS_PUT_HEX, 2             #   a1 = string / value
        .equ SYS_EXIT,    3             #   a1 = exit value, back to the kernel
        .equ EXIT_CODE,  42

        .text
        .globl _start
# _start: entry from the boot state (kernel mode, paging off, a0 = boot info).
_start:
        la      sp, stack_top
        la      t0, trap_entry
        mtcr    tvec, t0
        lw      t1, 0(a0)
        li      t2, BOOTINFO_MAGIC
        bne     t1, t2, panic
        lw      t1, BOOTINFO_FIRST_FREE(a0)
        la      t0, next_frame
        sw      t1, 0(t0)
        print   "paging_demo: boot\n"
        call    poison_pool
        call    build_page_tables
        la      t0, page_dir
        ori     t0, t0, PTB_ENABLE
        mtcr    ptb, t0
        print   "paging_demo: paging on\n"
        li      t0, TIMER_INTERVAL
        li      t1, TICK_INTERVAL
        sw      t1, 0(t0)
        li      t0, TIMER_CTRL
        li      t1, TIMER_ENABLE | TIMER_PERIODIC
        sw      t1, 0(t0)
        ei
        call    kernel_touch
        print   "kernel: touched 4 fresh pages\n"
        la      a0, user_main
        call    enter_user
        mov     s0, a0
        print   "kernel: user routine exited with "
        print_hex s0
        print   "\n"
        la      a0, user_bad
        call    enter_user
        mov     s0, a0
        print   "kernel: second user routine exited with "
        print_hex s0
        print   "\n"
        call    checksum_region
        mov     s0, a0
        mov     s1, a1
        print   "kernel: pages mapped on demand: "
        mov     a0, s1
        call    put_dec
        print   "\nkernel: checksum of mapped pages: "
        print_hex s0
        print   "\n"
        call    wait_ticks
        print   "kernel: ticks >= 3\n"
        di
        li      t0, TIMER_CTRL
        sw      zero, 0(t0)
        print   "paging_demo: done, exit code 42\n"
        li      a0, EXIT_CODE
        j       power_off

# poison_pool: fill the POOL_PAGES frames at next_frame with POOL_POISON, so a
# frame the fault handler forgot to zero shows in the checksum.  Paging off.
# Clobbers t0-t2.
poison_pool:
        la      t0, next_frame
        lw      t0, 0(t0)
        li      t1, POOL_POISON
        li      t2, POOL_PAGES * PAGE_SIZE / 4
1:      sw      t1, 0(t0)
        addi    t0, t0, 4
        addi    t2, t2, -1
        bnez    t2, 1b
        ret

# build_page_tables: fill pt_low (identity, kernel RW; U on the user pages),
# pt_mmio and page_dir (PDE 0 and the region's PDE with U, so user pages and
# the region are reachable from user mode).  Clobbers t0-t2.  Paging off.
build_page_tables:
        fill_table pt_low, PTE_P | PTE_W, 1024
        set_user pt_low, user_page
        set_user pt_low, user_stack
        fill_table pt_mmio, UART_TX | PTE_P | PTE_W, MMIO_PAGES
        la      t0, page_dir
        la      t1, pt_low
        ori     t1, t1, PTE_P | PTE_W | PTE_U
        sw      t1, 0(t0)
        la      t1, dz_table
        ori     t1, t1, PTE_P | PTE_W | PTE_U
        sw      t1, DZ_PDE(t0)
        la      t1, pt_mmio
        ori     t1, t1, PTE_P | PTE_W
        sw      t1, PDE_MMIO(t0)
        ret

# kernel_touch: touch region pages 0..3 from kernel mode: pages 0 and 1 read
# first (a read fault, then a write that needs none), pages 2 and 3 written
# first; page i gets (i + 1) * 0x01010101 at offset 0.  Clobbers t0-t3.
kernel_touch:
        li      t0, DZ_BASE
        li      t2, 0x01010101
        li      t3, 4
1:      sltiu   t1, t3, 3               # t3 = 4, 3: pages 0, 1 read first
        bnez    t1, 2f
        lw      t1, 0x100(t0)
2:      sw      t2, 0(t0)
        li      t1, 0x01010101
        add     t2, t2, t1
        li      t1, PAGE_SIZE
        add     t0, t0, t1
        addi    t3, t3, -1
        bnez    t3, 1b
        ret

# enter_user(a0 = user entry): run it in user mode (IE on, sp = user_stack_top)
# until it calls SYS_EXIT or faults; returns a0 = its exit value (0xFFFFFFFF
# when killed) in kernel mode with IE = 0.  Preserves s0-s3 and sp.
enter_user:
        la      t0, kernel_context
        sw      ra, 0(t0)
        sw      sp, 4(t0)
        sw      s0, 8(t0)
        sw      s1, 12(t0)
        sw      s2, 16(t0)
        sw      s3, 20(t0)
        mtcr    epc, a0
        la      sp, user_stack_top
        li      t0, STATUS_KM | STATUS_PIE      # PKM = 0: rfe drops to user mode, IE on
        mtcr    status, t0
        rfe

# return_to_kernel(a0 = exit value): resume enter_user's caller on its saved
# context (called from the trap handler, kernel mode, IE = 0).
return_to_kernel:
        la      t0, kernel_context
        lw      ra, 0(t0)
        lw      sp, 4(t0)
        lw      s0, 8(t0)
        lw      s1, 12(t0)
        lw      s2, 16(t0)
        lw      s3, 20(t0)
        ret

# checksum_region: a0 = the sum of every word of every mapped region page,
# a1 = how many region pages are mapped.  Clobbers t0-t3.
checksum_region:
        li      a0, 0
        li      a1, 0
        la      t0, dz_table
        li      t3, DZ_BASE
1:      lw      t1, 0(t0)
        andi    t1, t1, PTE_P
        beqz    t1, 3f
        addi    a1, a1, 1
        li      t2, PAGE_SIZE
        add     t2, t3, t2
2:      lw      t1, 0(t3)               # t3 walks the page, ends at its end
        add     a0, a0, t1
        addi    t3, t3, 4
        bne     t3, t2, 2b
        j       4f
3:      li      t2, PAGE_SIZE
        add     t3, t3, t2
4:      addi    t0, t0, 4
        li      t2, DZ_END
        bne     t3, t2, 1b
        ret

# wait_ticks: sleep until the timer handler has counted MIN_TICKS ticks.  IE on.
# Clobbers t0, t1.
wait_ticks:
        ei
1:      la      t0, ticks
        lw      t1, 0(t0)
        sltiu   t1, t1, MIN_TICKS
        beqz    t1, 2f
        wfi
        j       1b
2:      ret

# alloc_frame: a0 = the next frame of the pool, zeroed.  Panics when the pool is
# used up.  Clobbers t0-t2.
alloc_frame:
        la      t0, next_frame
        lw      a0, 0(t0)
        la      t1, pool_used
        lw      t2, 0(t1)
        sltiu   t2, t2, POOL_PAGES
        beqz    t2, panic
        lw      t2, 0(t1)
        addi    t2, t2, 1
        sw      t2, 0(t1)
        li      t1, PAGE_SIZE
        add     t1, a0, t1
        sw      t1, 0(t0)
        li      t2, LOW_MAP_END
        bgeu    a0, t2, panic           # must be reachable through the identity map
        mov     t0, a0
1:      sw      zero, 0(t0)
        addi    t0, t0, 4
        bne     t0, t1, 1b
        ret

# --- traps ----------------------------------------------------------------------------------

# trap_entry: the trap vector.  Saves every register of the interrupted code
# (either mode) in a frame on trap_stack, calls handle_trap(a0 = frame),
# restores and returns with rfe.  Does not nest (handlers run with IE = 0).
trap_entry:
        mtcr    scratch, sp
        la      sp, trap_stack_top
        addi    sp, sp, -FRAME_SIZE
        sw      ra, 4(sp)
        sw      at, 12(sp)
        sw      a0, 16(sp)
        sw      a1, 20(sp)
        sw      a2, 24(sp)
        sw      a3, 28(sp)
        sw      t0, 32(sp)
        sw      t1, 36(sp)
        sw      t2, 40(sp)
        sw      t3, 44(sp)
        sw      s0, 48(sp)
        sw      s1, 52(sp)
        sw      s2, 56(sp)
        sw      s3, 60(sp)
        mfcr    t0, scratch
        sw      t0, 8(sp)
        mfcr    t0, epc
        sw      t0, 0(sp)
        mov     a0, sp
        call    handle_trap
        lw      t0, 0(sp)
        mtcr    epc, t0
        lw      ra, 4(sp)
        lw      at, 12(sp)
        lw      a0, 16(sp)
        lw      a1, 20(sp)
        lw      a2, 24(sp)
        lw      a3, 28(sp)
        lw      t0, 32(sp)
        lw      t1, 36(sp)
        lw      t2, 40(sp)
        lw      t3, 44(sp)
        lw      s0, 48(sp)
        lw      s1, 52(sp)
        lw      s2, 56(sp)
        lw      s3, 60(sp)
        lw      sp, 8(sp)
        rfe

# handle_trap(a0 = frame): dispatch on cause.  Timer: count a tick.  Page
# fault: demand_fault.  Syscall: do_syscall.  Anything else panics.
handle_trap:
        push    ra
        push    s0
        mov     s0, a0
        mfcr    t0, cause
        li      t1, CAUSE_TIMER
        bne     t0, t1, 1f
        li      t0, TIMER_ACK
        sw      zero, 0(t0)
        la      t0, ticks
        lw      t1, 0(t0)
        addi    t1, t1, 1
        sw      t1, 0(t0)
        j       3f
1:      andi    t1, t0, CAUSE_CODE_MASK
        li      t2, EXC_PAGE_FAULT
        bne     t1, t2, 2f
        call    demand_fault
        j       3f
2:      li      t2, EXC_SYSCALL
        bne     t1, t2, unexpected_trap
        mov     a0, s0
        call    do_syscall
3:      pop     s0
        pop     ra
        ret

# demand_fault: a not-present fault inside the region maps a zeroed frame
# (P W U) and returns, so rfe retries the access.  A user fault anywhere else
# kills the user routine; a kernel one panics.  Clobbers t0-t3, a0, a1, s0 (saved
# by handle_trap).
demand_fault:
        push    ra
        mfcr    t0, cause
        andi    t1, t0, PF_PRESENT
        bnez    t1, not_demand
        mfcr    s0, badaddr
        li      t1, DZ_BASE
        bltu    s0, t1, not_demand
        li      t1, DZ_END
        bgeu    s0, t1, not_demand
        call    alloc_frame
        ori     a0, a0, PTE_P | PTE_W | PTE_U
        li      t1, DZ_BASE
        sub     t1, s0, t1
        srli    t1, t1, 12              # page index in the region
        la      t2, dz_table
        slli    t3, t1, 2
        add     t2, t2, t3
        sw      a0, 0(t2)
        tlbinv  s0
        print   "fault: "
        mfcr    t0, cause
        andi    t0, t0, PF_WRITE
        la      a0, msg_read
        beqz    t0, 1f
        la      a0, msg_write
1:      call    puts
        mfcr    t0, cause
        andi    t0, t0, PF_USER
        la      a0, msg_kernel
        beqz    t0, 2f
        la      a0, msg_user
2:      call    puts
        print_hex s0
        print   ": mapped a zeroed page\n"
        pop     ra
        ret
not_demand:
        mfcr    t0, cause
        andi    t0, t0, PF_USER
        beqz    t0, unexpected_trap
        print   "fault: user access cause "
        mfcr    t0, cause
        print_hex t0
        print   " badaddr "
        mfcr    t0, badaddr
        print_hex t0
        print   " is not a demand-zero fault: user routine killed\n"
        li      a0, -1
        j       return_to_kernel

# do_syscall(a0 = frame): the frame's a0 is the number, a1 the argument.
# Advances the frame's epc past the syscall.  SYS_EXIT does not return here.
do_syscall:
        push    ra
        push    s0
        mov     s0, a0
        lw      t0, 0(s0)
        addi    t0, t0, 4
        sw      t0, 0(s0)
        lw      t0, 16(s0)              # the caller's a0: the number
        lw      a0, 20(s0)              # its a1: the argument
        li      t1, SYS_PUTS
        bne     t0, t1, 1f
        call    puts
        j       3f
1:      li      t1, SYS_PUT_HEX
        bne     t0, t1, 2f
        call    put_hex
        j       3f
2:      li      t1, SYS_EXIT
        bne     t0, t1, unexpected_trap
        j       return_to_kernel
3:      pop     s0
        pop     ra
        ret

unexpected_trap:
        print   "paging_demo: unexpected trap, cause "
        mfcr    t0, cause
        print_hex t0
        print   " epc "
        mfcr    t0, epc
        print_hex t0
        print   "\n"
panic:
        li      a0, EXIT_UNEXPECTED
        j       power_off

# --- user mode --------------------------------------------------------------------------------
# One page of code and strings with U in its PTE; user_stack is the other user page.

        .balign PAGE_SIZE
user_page:
# user_main: print, touch region pages 4..7 (page 4 read first; page i gets
# (i + 1) * 0x01010101 at offset 4 * (i - 4)), print their sum, exit with 0x600d.
user_main:
        li      a0, SYS_PUTS
        la      a1, user_hello
        syscall
        li      t0, DZ_BASE + 4 * PAGE_SIZE
        lw      t1, 0(t0)               # a read fault first
        li      t2, 0x05050505
        li      t3, 4                   # pages 4..7
        li      s0, 0                   # the sum of what was written
1:      sw      t2, 0(t0)
        add     s0, s0, t2
        li      t1, PAGE_SIZE + 4
        add     t0, t0, t1
        li      t1, 0x01010101
        add     t2, t2, t1
        addi    t3, t3, -1
        bnez    t3, 1b
        li      a0, SYS_PUTS
        la      a1, user_sum
        syscall
        li      a0, SYS_PUT_HEX
        mov     a1, s0
        syscall
        li      a0, SYS_PUTS
        la      a1, user_newline
        syscall
        li      a0, SYS_EXIT
        li      a1, 0x600d
        syscall

# user_bad: read the boot-info page (kernel-only): the kernel kills it.
user_bad:
        li      a0, SYS_PUTS
        la      a1, user_peek
        syscall
        lw      t0, 0x1000(zero)
        li      a0, SYS_EXIT
        li      a1, 0
        syscall

user_hello:     .asciz "user: hello from user mode\n"
user_sum:       .asciz "user: touched 4 fresh pages, sum "
user_newline:   .asciz "\n"
user_peek:      .asciz "user: reading the kernel's boot-info page\n"
        .balign PAGE_SIZE

        .rodata
msg_read:       .asciz "read"
msg_write:      .asciz "write"
msg_kernel:     .asciz " by kernel at "
msg_user:       .asciz " by user at "

        .data
ticks:          .word 0
next_frame:     .word 0                 # the pool's next free frame
pool_used:      .word 0
kernel_context: .space 24               # enter_user's ra, sp, s0-s3

        .bss
        .balign PAGE_SIZE
page_dir:       .space PAGE_SIZE
pt_low:         .space PAGE_SIZE
pt_mmio:        .space PAGE_SIZE
dz_table:       .space PAGE_SIZE
user_stack:     .space PAGE_SIZE
user_stack_top:
stack:          .space PAGE_SIZE
stack_top:
trap_stack:     .space 1024
trap_stack_top:
