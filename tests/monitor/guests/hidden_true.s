# hidden_true.s: page faults the guest never sees, and page faults it must see.
#
# Under shadow paging a guest access whose mapping the guest's own tables
# allow, but whose shadow entry is not built yet, is a hidden fault: the VMM
# fixes the shadow and the guest sees nothing.  An access the guest's tables
# refuse is a true fault and must reach the guest exactly as on bare hardware.
#
# The kernel maps 8 pages at REGION itself, then touches them: its page-fault
# handler must run 0 times.  Then it probes addresses its tables refuse (a
# missing PDE, a missing PTE, a write to a read-only page, a fetch from a
# missing PDE): the handler reports each cause and badaddr.  Then it remaps a
# page to another frame (PTE store, tlbinv) and reads the new frame's value
# through it, and unmaps that page (PTE store, tlbinv) and reads it: a fault.
# Last it prints the handler's total count of page faults and powers off with
# exit code 51 (see hidden_true.expected).
#
# The test compares the counts with the VMM's counters: hidden_faults >= 8,
# true_faults = the total printed.
#
# Virtual layout (paging on):
#
#   0x00000000-0x003FFFFF  low RAM identity, kernel-only (PDE 0 -> pt_low)
#   0x00800000-0x00807FFF  REGION: 8 pages -> frames[0..7], kernel RW (PDE 2 -> region_pt)
#   0x00808000             RO_PAGE -> frames[8], read-only
#   0x00809000             REMAP_PAGE -> frame_a, then frame_b, then nothing
#   0x0080A000             PTE not present
#   0x00C00000-...         PDE 3 not present
#   0xF0000000-0xF0003FFF  UART, timer, disk, power: kernel-only

        .include "kernel.inc"

        .equ REGION,       0x00800000
        .equ REGION_PAGES, 8
        .equ REGION_PDE,   (REGION >> 22) * 4
        .equ RO_PAGE,      REGION + 8 * PAGE_SIZE
        .equ REMAP_PAGE,   REGION + 9 * PAGE_SIZE
        .equ NO_PTE,       REGION + 10 * PAGE_SIZE
        .equ NO_PDE,       0x00C00000
        .equ VALUE_A,      0x11111111
        .equ VALUE_B,      0x22222222
        .equ PROBE_READ,   0
        .equ PROBE_WRITE,  1
        .equ PROBE_FETCH,  2
        .equ EXIT_CODE,    51

        .text
        .globl _start
# _start: entry from the boot state (kernel mode, paging off).
_start:
        la      sp, stack_top
        la      t0, trap_entry
        mtcr    tvec, t0
        print   "hidden_true: boot\n"
        call    build_page_tables
        la      t0, page_dir
        ori     t0, t0, PTB_ENABLE
        mtcr    ptb, t0
        print   "hidden_true: paging on, 8 pages mapped by the kernel\n"
        call    touch_region
        mov     s0, a0
        print   "touched 8 mapped pages, checksum "
        print_hex s0
        print   "\npage faults seen by the kernel so far: "
        call    print_fault_count
        call    true_faults
        call    remap_and_unmap
        print   "page faults seen by the kernel in all: "
        call    print_fault_count
        print   "hidden_true: done, exit code 51\n"
        li      a0, EXIT_CODE
        j       power_off

# build_page_tables: pt_low (identity, kernel RW), pt_mmio, region_pt (REGION
# pages -> frames[i], RO_PAGE read-only, REMAP_PAGE -> frame_a) and page_dir.
# Writes VALUE_A into frame_a and VALUE_B into frame_b.  Clobbers t0-t3.
# Paging off.
build_page_tables:
        fill_table pt_low, PTE_P | PTE_W, 1024
        fill_table pt_mmio, UART_TX | PTE_P | PTE_W, MMIO_PAGES
        la      t0, region_pt
        la      t1, frames
        ori     t1, t1, PTE_P | PTE_W
        li      t2, REGION_PAGES
3:      sw      t1, 0(t0)
        addi    t0, t0, 4
        addi    t1, t1, PAGE_SIZE
        addi    t2, t2, -1
        bnez    t2, 3b
        xori    t1, t1, PTE_W           # the next frame, read-only: RO_PAGE
        sw      t1, 0(t0)
        la      t1, frame_a
        ori     t1, t1, PTE_P | PTE_W
        sw      t1, 4(t0)               # REMAP_PAGE
        la      t0, frame_a
        li      t1, VALUE_A
        sw      t1, 0(t0)
        la      t0, frame_b
        li      t1, VALUE_B
        sw      t1, 0(t0)
        la      t0, page_dir
        la      t1, pt_low
        ori     t1, t1, PTE_P | PTE_W
        sw      t1, 0(t0)
        la      t1, region_pt
        ori     t1, t1, PTE_P | PTE_W
        sw      t1, REGION_PDE(t0)
        la      t1, pt_mmio
        ori     t1, t1, PTE_P | PTE_W
        sw      t1, PDE_MMIO(t0)
        ret

# touch_region: write (i + 1) * 0x00010001 at offset 4 * i of REGION page i,
# then read the 8 words back: a0 = their sum.  Clobbers t0-t3.
touch_region:
        li      t0, REGION
        li      t1, 0x00010001
        li      t2, REGION_PAGES
1:      sw      t1, 0(t0)
        li      t3, PAGE_SIZE + 4
        add     t0, t0, t3
        li      t3, 0x00010001
        add     t1, t1, t3
        addi    t2, t2, -1
        bnez    t2, 1b
        li      a0, 0
        li      t0, REGION
        li      t2, REGION_PAGES
2:      lw      t1, 0(t0)
        add     a0, a0, t1
        li      t3, PAGE_SIZE + 4
        add     t0, t0, t3
        addi    t2, t2, -1
        bnez    t2, 2b
        ret

# true_faults: probe four accesses the tables refuse and print each fault.
# Clobbers t0-t3, a0-a3, s0.
true_faults:
        push    ra
        print   "read, missing PDE: "
        li      a0, NO_PDE
        li      a1, PROBE_READ
        call    probe_and_print
        print   "write, missing PTE: "
        li      a0, NO_PTE
        li      a1, PROBE_WRITE
        call    probe_and_print
        print   "write, read-only page: "
        li      a0, RO_PAGE
        li      a1, PROBE_WRITE
        call    probe_and_print
        print   "fetch, missing PDE: "
        li      a0, NO_PDE + PAGE_SIZE
        li      a1, PROBE_FETCH
        call    probe_and_print
        pop     ra
        ret

# remap_and_unmap: read REMAP_PAGE (VALUE_A), point its PTE at frame_b, tlbinv,
# read it again (VALUE_B); then clear the PTE, tlbinv and probe a read: a fault.
# Clobbers t0-t3, a0-a3, s0.
remap_and_unmap:
        push    ra
        li      t0, REMAP_PAGE
        lw      s0, 0(t0)
        print   "remap: before "
        print_hex s0
        la      t0, region_pt
        la      t1, frame_b
        ori     t1, t1, PTE_P | PTE_W
        sw      t1, 9 * 4(t0)
        li      t0, REMAP_PAGE
        tlbinv  t0
        lw      s0, 0(t0)
        print   ", after the PTE change and tlbinv "
        print_hex s0
        print   "\nunmap, then read: "
        la      t0, region_pt
        sw      zero, 9 * 4(t0)
        li      t0, REMAP_PAGE
        tlbinv  t0
        li      a0, REMAP_PAGE
        li      a1, PROBE_READ
        call    probe_and_print
        pop     ra
        ret

# probe_and_print(a0 = address, a1 = PROBE_*): probe, then print
# "cause C badaddr B" or "no fault", and a newline.  Clobbers t0-t3, a0-a3, s0.
probe_and_print:
        push    ra
        call    probe
        mov     s0, a1
        beqz    a0, 1f
        mov     t3, a0
        print   "cause "
        print_hex t3
        print   " badaddr "
        print_hex s0
        print   "\n"
        j       2f
1:      print   "no fault\n"
2:      pop     ra
        ret

# probe(a0 = address, a1 = PROBE_*): access the address (a fetch jumps to it,
# so probe fetches only where nothing is mapped).  Returns a0 = cause and
# a1 = badaddr of the page fault it took, or a0 = 0.  Clobbers t0, t1, a2.
probe:
        la      t0, probe_fixup
        la      t1, 3f
        sw      t1, 0(t0)               # armed: a page fault resumes at 3f
        li      t1, PROBE_READ
        bne     a1, t1, 1f
        lw      a2, 0(a0)
        j       2f
1:      li      t1, PROBE_WRITE
        bne     a1, t1, 4f
        sw      zero, 0(a0)
        j       2f
4:      jalr    zero, a0, 0
2:      la      t0, probe_fixup
        sw      zero, 0(t0)
        li      a0, 0
        ret
3:      la      t0, fault_cause
        lw      a0, 0(t0)
        lw      a1, 4(t0)
        ret

# print_fault_count: print the handler's page-fault count and a newline.
# Clobbers t0-t3, a0, a1.
print_fault_count:
        push    ra
        la      t0, fault_count
        lw      a0, 0(t0)
        call    put_dec
        li      a0, '\n'
        call    putc
        pop     ra
        ret

# trap_entry: the trap vector.  A page fault while a probe is armed is
# counted, recorded (fault_cause, fault_badaddr) and resumed at the probe's
# fixup; it preserves every register.  Any other trap panics.
trap_entry:
        mtcr    scratch, t0
        la      t0, trap_save
        sw      t1, 0(t0)
        mfcr    t1, cause
        andi    t1, t1, CAUSE_CODE_MASK
        addi    t1, t1, -EXC_PAGE_FAULT
        bnez    t1, unexpected_trap
        la      t0, fault_count
        lw      t1, 0(t0)
        addi    t1, t1, 1
        sw      t1, 0(t0)
        la      t0, probe_fixup
        lw      t1, 0(t0)
        beqz    t1, unexpected_trap
        sw      zero, 0(t0)             # disarm
        mtcr    epc, t1
        la      t0, fault_cause
        mfcr    t1, cause
        sw      t1, 0(t0)
        mfcr    t1, badaddr
        sw      t1, 4(t0)
        la      t0, trap_save
        lw      t1, 0(t0)
        mfcr    t0, scratch
        rfe

unexpected_trap:
        print   "hidden_true: unexpected trap, cause "
        mfcr    t0, cause
        print_hex t0
        print   " epc "
        mfcr    t0, epc
        print_hex t0
        print   "\n"
        li      a0, EXIT_UNEXPECTED
        j       power_off

        .data
        .balign 4
fault_count:    .word 0
probe_fixup:    .word 0                 # where a page fault resumes; 0: not armed
fault_cause:    .word 0                 # keep these two in this order
fault_badaddr:  .word 0
trap_save:      .word 0

        .bss
        .balign PAGE_SIZE
page_dir:       .space PAGE_SIZE
pt_low:         .space PAGE_SIZE
pt_mmio:        .space PAGE_SIZE
region_pt:      .space PAGE_SIZE
frames:         .space (REGION_PAGES + 1) * PAGE_SIZE
frame_a:        .space PAGE_SIZE
frame_b:        .space PAGE_SIZE
stack:          .space PAGE_SIZE
stack_top:
