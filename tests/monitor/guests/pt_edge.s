# pt_edge.s: page-table edge cases a shadow-paging VMM must get exactly right.
#
# Each case prints what the bare machine does (see pt_edge.expected):
#
#   1. A PTE whose frame lies past the end of RAM (boot-info mem_size): the
#      access is a bus error at the virtual address.  The same for a PDE whose
#      page table lies past the end of RAM.
#   2. tlbinv of an address nothing maps: no trap; an access there then
#      page-faults as usual.
#   3. One table used at two levels at once: PDE 1023 points at the page
#      directory itself, so the directory is also a page table.  Reads through
#      the self-map agree with direct reads, a PTE stored through it takes
#      effect, and the walker sets A and D in the directory's own entries.
#   4. Byte and halfword stores into a PTE (sb on the flags byte, sb on the
#      frame's low byte, sh on its upper half), each followed by tlbinv and a
#      read through the edited entry.
#   5. A second address space: while it is current the kernel edits the first
#      one's page table, then switches back with mtcr ptb and reads the new
#      mapping.
#   6. A fault while the kernel stack sits on an unmapped page.  The trap
#      handler pushes onto the interrupted kernel stack, so pushing its frame
#      faults again (a double fault).  The handler detects the nesting with a
#      flag in page 0 (reachable as imm(zero) without a free register), switches
#      to the known-good stack whose top `scratch` holds at all times, reports
#      both traps and resumes at the probe's fixup.
#
# Exit code 61.
#
# Virtual layout (paging on; both address spaces share pt_low and pt_mmio):
#
#   0x00000000-0x003FFFFF  low RAM identity, kernel RW (PDE 0 -> pt_low); page 0 holds PCPU
#   0x00C00000-0x00FFFFFF  EDGE: AS1 PDE 3 -> edge_pt, AS2 PDE 3 -> edge_pt2
#   0x01000000-0x013FFFFF  PDE 4: never present (unmapped probes, the bad stack)
#   0x01400000-0x017FFFFF  PDE 5: briefly points past the end of RAM
#   0xF0000000-0xF0003FFF  UART, timer, disk, power: kernel-only
#   0xFFC00000-0xFFFFFFFF  AS1 PDE 1023 -> page_dir (case 3)
#
# frame_a, frame_b, frame_c hold MARK_A, MARK_B, MARK_C.  frame_a and frame_b
# differ only in address bits 12-15, frame_b and frame_c only in bits 16-31, so
# a one-byte or one-halfword store into a PTE moves it between them.

        .include "kernel.inc"

        .equ EDGE,         0x00C00000
        .equ EDGE_PDE,     (EDGE >> 22) * 4
        .equ UNMAPPED,     0x01000000           # PDE 4: not present
        .equ BAD_STACK,    UNMAPPED + 0x5000    # case 6's kernel stack top
        .equ BAD_PT_VA,    0x01400000           # PDE 5: case 1's table past RAM
        .equ BAD_PT_PDE,   (BAD_PT_VA >> 22) * 4
        .equ SELF_SLOT,    1023
        .equ SELF_PT_BASE, SELF_SLOT << 22      # page tables seen through the self-map
        .equ SELF_PD,      SELF_PT_BASE + SELF_SLOT * PAGE_SIZE   # the directory itself
        .equ MARK_A,       0xAAAA0001
        .equ MARK_B,       0xBBBB0002
        .equ MARK_C,       0xCCCC0003
        .equ PCPU_T0,      0x0800               # per-CPU words in page 0, used as imm(zero)
        .equ PCPU_DEPTH,   0x0804               #   1 while trap_entry pushes its frame
        .equ PCPU_CAUSE,   0x0808               #   the trap being entered
        .equ PCPU_BADADDR, 0x080C
        .equ PROBE_READ,   0
        .equ PROBE_WRITE,  1
        .equ EXIT_CODE,    61

        .text
        .globl _start
# _start: entry from the boot state (kernel mode, paging off, a0 = boot info).
_start:
        la      sp, stack_top
        la      t0, trap_entry
        mtcr    tvec, t0
        la      t0, emergency_stack_top
        mtcr    scratch, t0             # the known-good stack, for double faults
        lw      t1, BOOTINFO_MEM_SIZE(a0)
        la      t0, ram_end
        sw      t1, 0(t0)
        print   "pt_edge: boot\n"
        call    build_page_tables
        la      t0, page_dir
        ori     t0, t0, PTB_ENABLE
        mtcr    ptb, t0
        print   "pt_edge: paging on\n"
        call    case_past_ram
        call    case_tlbinv_unmapped
        call    case_self_map
        call    case_narrow_pte_writes
        call    case_inactive_space
        call    case_unmapped_stack
        print   "pt_edge: done, exit code 61\n"
        li      a0, EXIT_CODE
        j       power_off

# build_page_tables: both address spaces (see the header) and the marks in
# frame_a/b/c.  edge_pt starts empty; edge_pt2[5] maps frame_b.  Clobbers
# t0-t3, a0, a1.  Paging off.
build_page_tables:
        push    ra
        fill_table pt_low, PTE_P | PTE_W, 1024
        fill_table pt_mmio, UART_TX | PTE_P | PTE_W, MMIO_PAGES
        la      t0, frame_a
        li      t1, MARK_A
        sw      t1, 0(t0)
        la      t0, frame_b
        li      t1, MARK_B
        sw      t1, 0(t0)
        la      t0, frame_c
        li      t1, MARK_C
        sw      t1, 0(t0)
        la      t0, edge_pt2
        la      t1, frame_b
        ori     t1, t1, PTE_P | PTE_W
        sw      t1, 5 * 4(t0)
        la      a0, page_dir
        la      a1, edge_pt
        call    fill_directory
        la      a0, page_dir2
        la      a1, edge_pt2
        call    fill_directory
        pop     ra
        ret

# fill_directory(a0 = directory, a1 = its EDGE page table): PDE 0 -> pt_low,
# EDGE -> a1, MMIO -> pt_mmio, all P W.  Clobbers t1.
fill_directory:
        la      t1, pt_low
        ori     t1, t1, PTE_P | PTE_W
        sw      t1, 0(a0)
        ori     t1, a1, PTE_P | PTE_W
        sw      t1, EDGE_PDE(a0)
        la      t1, pt_mmio
        ori     t1, t1, PTE_P | PTE_W
        sw      t1, PDE_MMIO(a0)
        ret

# --- case 1 ---------------------------------------------------------------------------------

# case_past_ram: a PTE, then a PDE, naming the first frame past RAM.
# Clobbers t0-t3, a0-a3, s0.
case_past_ram:
        push    ra
        la      t0, ram_end
        lw      t1, 0(t0)
        ori     t1, t1, PTE_P | PTE_W
        la      t0, edge_pt
        sw      t1, 1 * 4(t0)
        li      a0, EDGE + 1 * PAGE_SIZE
        tlbinv  a0
        print   "data frame past the end of RAM, read: "
        li      a0, EDGE + 1 * PAGE_SIZE
        li      a1, PROBE_READ
        call    probe_and_print
        la      t0, ram_end
        lw      t1, 0(t0)
        ori     t1, t1, PTE_P | PTE_W
        la      t0, page_dir
        sw      t1, BAD_PT_PDE(t0)
        li      a0, BAD_PT_VA
        tlbinv  a0
        print   "page table past the end of RAM, read: "
        li      a0, BAD_PT_VA
        li      a1, PROBE_READ
        call    probe_and_print
        la      t0, page_dir
        sw      zero, BAD_PT_PDE(t0)
        li      a0, BAD_PT_VA
        tlbinv  a0
        pop     ra
        ret

# --- case 2 ---------------------------------------------------------------------------------

# case_tlbinv_unmapped: tlbinv of an address with no PDE, then read it.
# Clobbers t0-t3, a0-a3, s0.
case_tlbinv_unmapped:
        push    ra
        li      t0, UNMAPPED
        tlbinv  t0
        print   "tlbinv of an unmapped address: no trap\nthen a read there: "
        li      a0, UNMAPPED
        li      a1, PROBE_READ
        call    probe_and_print
        pop     ra
        ret

# --- case 3 ---------------------------------------------------------------------------------

# case_self_map: PDE 1023 -> page_dir.  Compare the EDGE PDE and a PTE read
# through the self-map with direct reads; store edge_pt[2] through it and read
# the page it maps; print the flags the walker left in PDE 1023 and the EDGE PDE.
# Clobbers t0-t3, a0-a3, s0, s1.
case_self_map:
        push    ra
        la      t0, page_dir
        ori     t1, t0, PTE_P | PTE_W
        sw      t1, SELF_SLOT * 4(t0)
        li      t1, SELF_PD + EDGE_PDE
        lw      s0, 0(t1)               # the EDGE PDE, read as data through the self-map
        lw      s1, EDGE_PDE(t0)
        print   "self-map: the EDGE PDE through the self-map "
        call    print_same
        li      t1, SELF_PT_BASE + (EDGE >> 22) * PAGE_SIZE + 1 * 4
        lw      s0, 0(t1)               # edge_pt[1], through the self-map
        la      t0, edge_pt
        lw      s1, 1 * 4(t0)
        print   "self-map: edge_pt[1] through the self-map "
        call    print_same
        la      t1, frame_c
        ori     t1, t1, PTE_P | PTE_W
        li      t0, SELF_PT_BASE + (EDGE >> 22) * PAGE_SIZE + 2 * 4
        sw      t1, 0(t0)               # edge_pt[2] = frame_c, stored through the self-map
        li      t0, EDGE + 2 * PAGE_SIZE
        tlbinv  t0
        lw      s0, 0(t0)
        print   "self-map: PTE stored through it, then read: "
        print_hex s0
        print   "\nself-map: flags of PDE 1023 "
        la      t0, page_dir
        lw      a0, SELF_SLOT * 4(t0)
        andi    a0, a0, PTE_FLAGS
        call    put_hex
        print   ", of the EDGE PDE "
        la      t0, page_dir
        lw      a0, EDGE_PDE(t0)
        andi    a0, a0, PTE_FLAGS
        call    put_hex
        print   "\n"
        pop     ra
        ret

# print_same: print "matches the direct read" if s0 == s1, else both values;
# and a newline.  Clobbers t0-t2, a0, a1.
print_same:
        push    ra
        bne     s0, s1, 1f
        print   "matches the direct read\n"
        j       2f
1:      print   "differs: "
        print_hex s0
        print   " vs "
        print_hex s1
        print   "\n"
2:      pop     ra
        ret

# --- case 4 ---------------------------------------------------------------------------------

# case_narrow_pte_writes: edge_pt[4] = frame_a with P clear; read (a fault).
# sb the flags byte to P W; read (MARK_A).  sb byte 1 to frame_b's; read
# (MARK_B).  sh the upper half to frame_c's; read (MARK_C).  A tlbinv before
# every read.  Clobbers t0-t3, a0-a3, s0.
case_narrow_pte_writes:
        push    ra
        la      t0, edge_pt
        la      t1, frame_a
        ori     t1, t1, PTE_W
        sw      t1, 4 * 4(t0)
        print   "narrow writes: PTE without P, read: "
        call    read_edge4
        la      t0, edge_pt
        li      t1, PTE_P | PTE_W
        sb      t1, 4 * 4(t0)
        print   "narrow writes: after sb of the flags byte, read: "
        call    read_edge4
        la      t0, edge_pt
        la      t1, frame_b
        srli    t1, t1, 8
        sb      t1, 4 * 4 + 1(t0)
        print   "narrow writes: after sb of frame byte 1, read: "
        call    read_edge4
        la      t0, edge_pt
        la      t1, frame_c
        srli    t1, t1, 16
        sh      t1, 4 * 4 + 2(t0)
        print   "narrow writes: after sh of the frame's upper half, read: "
        call    read_edge4
        pop     ra
        ret

# read_edge4: tlbinv EDGE page 4, probe a read and print the word or the fault.
# Clobbers t0-t3, a0-a3, s0.
read_edge4:
        push    ra
        li      a0, EDGE + 4 * PAGE_SIZE
        tlbinv  a0
        li      a1, PROBE_READ
        call    probe_and_print
        pop     ra
        ret

# --- case 5 ---------------------------------------------------------------------------------

# case_inactive_space: read EDGE page 5 in AS1 (frame_a), switch to AS2 (its
# own mapping, frame_b), edit AS1's edge_pt[5] to frame_c while AS2 is
# current, switch back and read again (frame_c).  Clobbers t0-t3, a0-a3, s0.
case_inactive_space:
        push    ra
        la      t0, edge_pt
        la      t1, frame_a
        ori     t1, t1, PTE_P | PTE_W
        sw      t1, 5 * 4(t0)
        li      t0, EDGE + 5 * PAGE_SIZE
        tlbinv  t0
        lw      s0, 0(t0)
        print   "address spaces: AS1 reads "
        print_hex s0
        la      t0, page_dir2
        ori     t0, t0, PTB_ENABLE
        mtcr    ptb, t0
        li      t0, EDGE + 5 * PAGE_SIZE
        lw      s0, 0(t0)
        print   ", AS2 reads "
        print_hex s0
        la      t0, edge_pt
        la      t1, frame_c
        ori     t1, t1, PTE_P | PTE_W
        sw      t1, 5 * 4(t0)           # AS1's table, while AS2 is current
        la      t0, page_dir
        ori     t0, t0, PTB_ENABLE
        mtcr    ptb, t0
        li      t0, EDGE + 5 * PAGE_SIZE
        lw      s0, 0(t0)
        print   ", AS1 after the edit reads "
        print_hex s0
        print   "\n"
        pop     ra
        ret

# --- case 6 ---------------------------------------------------------------------------------

# case_unmapped_stack: with sp on an unmapped page, read an unmapped address.
# trap_entry's push faults; double_fault reports both traps and resumes at 1f.
# Clobbers t0-t3, a0-a3.
case_unmapped_stack:
        push    ra
        la      t0, good_sp
        sw      sp, 0(t0)
        la      t0, probe_fixup
        la      t1, 1f
        sw      t1, 0(t0)               # armed
        li      sp, BAD_STACK
        li      t0, UNMAPPED
        lw      t1, 0(t0)               # the first trap
        print   "unmapped stack: no fault?\n"
1:      la      t0, good_sp
        lw      sp, 0(t0)
        print   "unmapped stack: recovered on the known-good stack\n"
        pop     ra
        ret

# --- probes and traps ---------------------------------------------------------------------

# probe_and_print(a0 = address, a1 = PROBE_*): probe, then print
# "cause C badaddr B" or the word read, and a newline.
# Clobbers t0-t3, a0-a3, s0.
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
        j       2f
1:      print_hex a2
2:      print   "\n"
        pop     ra
        ret

# probe(a0 = address, a1 = PROBE_*): access the address.  Returns a0 = cause
# and a1 = badaddr of the page fault or bus error it took, or a0 = 0 (and a2 =
# the word, for a read).  Clobbers t0, t1, a2.
probe:
        la      t0, probe_fixup
        la      t1, 3f
        sw      t1, 0(t0)               # armed: a fault resumes at 3f
        li      t1, PROBE_READ
        bne     a1, t1, 1f
        lw      a2, 0(a0)
        j       2f
1:      sw      zero, 0(a0)
2:      la      t0, probe_fixup
        sw      zero, 0(t0)
        li      a0, 0
        ret
3:      la      t0, fault_cause
        lw      a0, 0(t0)
        lw      a1, 4(t0)
        ret

# trap_entry: the trap vector.  Saves the trap's cause and badaddr in PCPU,
# then pushes t0 and t1 onto the interrupted kernel stack.  A trap taken
# while pushing (PCPU_DEPTH set) goes to double_fault.  A page fault or bus
# error while a probe is armed is recorded (fault_cause, fault_badaddr) and
# resumed at the probe's fixup; it preserves every register.  Anything else
# panics.
trap_entry:
        sw      t0, PCPU_T0(zero)
        lw      t0, PCPU_DEPTH(zero)
        bnez    t0, double_fault
        li      t0, 1
        sw      t0, PCPU_DEPTH(zero)
        mfcr    t0, cause
        sw      t0, PCPU_CAUSE(zero)
        mfcr    t0, badaddr
        sw      t0, PCPU_BADADDR(zero)
        lw      t0, PCPU_T0(zero)
        addi    sp, sp, -8
        sw      t0, 0(sp)               # the first touch of the stack: may fault
        sw      t1, 4(sp)
        sw      zero, PCPU_DEPTH(zero)
        mfcr    t0, cause
        andi    t0, t0, CAUSE_CODE_MASK
        li      t1, EXC_PAGE_FAULT
        beq     t0, t1, 1f
        li      t1, EXC_BUS_ERROR
        bne     t0, t1, unexpected_trap
1:      la      t0, probe_fixup
        lw      t1, 0(t0)
        beqz    t1, unexpected_trap
        sw      zero, 0(t0)             # disarm
        mtcr    epc, t1
        la      t0, fault_cause
        mfcr    t1, cause
        sw      t1, 0(t0)
        mfcr    t1, badaddr
        sw      t1, 4(t0)
        lw      t0, 0(sp)
        lw      t1, 4(sp)
        addi    sp, sp, 8
        rfe

# double_fault: pushing a trap frame trapped.  Switch to the known-good stack
# (scratch), report this trap and the one being entered, and resume at the
# armed fixup in kernel mode (IE = 0), which restores its own sp.
double_fault:
        mfcr    sp, scratch
        sw      zero, PCPU_DEPTH(zero)
        print   "double fault: pushing the trap frame: cause "
        mfcr    t3, cause
        print_hex t3
        print   " badaddr "
        mfcr    t3, badaddr
        print_hex t3
        print   "\ndouble fault: the trap being entered: cause "
        lw      t3, PCPU_CAUSE(zero)
        print_hex t3
        print   " badaddr "
        lw      t3, PCPU_BADADDR(zero)
        print_hex t3
        print   "\n"
        la      t0, probe_fixup
        lw      t1, 0(t0)
        beqz    t1, unexpected_trap
        sw      zero, 0(t0)
        jr      t1

unexpected_trap:
        print   "pt_edge: unexpected trap, cause "
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
ram_end:        .word 0                 # boot-info mem_size
probe_fixup:    .word 0                 # where a fault resumes; 0: not armed
fault_cause:    .word 0                 # keep these two in this order
fault_badaddr:  .word 0
good_sp:        .word 0

        .bss
        .balign 0x10000
frame_a:        .space PAGE_SIZE        # 64 KiB aligned: see the header
frame_b:        .space PAGE_SIZE
                .space 0xF000
frame_c:        .space PAGE_SIZE        # frame_b + 0x10000
page_dir:       .space PAGE_SIZE
page_dir2:      .space PAGE_SIZE
pt_low:         .space PAGE_SIZE
pt_mmio:        .space PAGE_SIZE
edge_pt:        .space PAGE_SIZE
edge_pt2:       .space PAGE_SIZE
stack:          .space PAGE_SIZE
stack_top:
emergency_stack: .space 1024
emergency_stack_top:
