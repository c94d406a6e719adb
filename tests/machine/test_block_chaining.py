"""Block chaining, loops inside one block, and invalidation by page.

The translator chains a block to its successors on the same page, runs a
block that jumps back to its own start as a loop inside its function, and
drops cached blocks page by page (vmm/machine/translate.py, cpu.py).  None of
that may be visible: every scenario here runs twice, once as translated
blocks and once with the trace on (one uncached instruction at a time), and
must end in the same registers, pc, ticks and counters.
"""

from __future__ import annotations

from asm.isa import (CR_CAUSE, CR_EPC, CR_TVEC, EXC_PAGE_FAULT, PTB_ENABLE, PTE_P, PTE_W, REG_NUMBERS,
                     BY_MNEMONIC, encode)
from tests.machine.cpuprog import CODE_BASE, label_address, li, machine_with

PAGE_DIR, PAGE_TABLE = 0x20000, 0x21000
DATA_PHYS, DATA_VIRT = 0x40000, 0x00400000
OTHER_CODE = 0x50000           # a second physical frame for the code page


def word(mnemonic: str, **operands) -> int:
    return encode(BY_MNEMONIC[mnemonic], operands)


def map_page(memory, va: int, pa: int) -> None:
    """Map the 4 KiB page at `va` to `pa`, present and writable."""
    table = PAGE_TABLE + 4096 * (va >> 22)
    memory.write(PAGE_DIR + 4 * (va >> 22), 4, table | PTE_P | PTE_W)
    memory.write(table + 4 * ((va >> 12) & 0x3FF), 4, pa | PTE_P | PTE_W)


def build(items, setup=None, handler=(("halt",),), regs=None):
    """A machine with `items` then `handler:` (tvec points there), `regs` by name."""
    body = list(items) + ["handler:"] + list(handler)
    machine = machine_with(body, mem_size=1 << 20)
    machine.cpu.cr[CR_TVEC] = label_address(body, "handler")
    for name, value in (regs or {}).items():
        machine.cpu.regs[REG_NUMBERS[name]] = value
    if setup:
        setup(machine.memory)
    return machine


def state(machine):
    cpu = machine.cpu
    return list(cpu.regs), list(cpu.cr), cpu.pc, cpu.ticks, cpu.state, cpu.counters.as_dict()


def run_both(items, setup=None, handler=(("halt",),), slices=(), regs=None):
    """Run translated and traced, each in the `slices` (until ticks) and then
    to the end; assert they end alike.  Returns the translated machine."""
    ends = []
    for traced in (False, True):
        machine = build(items, setup, handler, regs)
        if traced:
            machine.cpu.trace = lambda *event: None
        for until in slices:
            machine.cpu.run(until)
            assert machine.cpu.ticks == until
        machine.run(max_instructions=100_000)
        ends.append((machine, state(machine)))
    assert ends[0][1] == ends[1][1]
    return ends[0][0]


def reg(machine, name):
    return machine.cpu.regs[REG_NUMBERS[name]]


COUNTED_LOOP = li("t0", 100) + ["loop:", ("addi", "s0", "s0", 3), ("xor", "s1", "s1", "s0"),
                                 ("addi", "t0", "t0", -1), ("bne", "t0", "zero", "loop"), ("halt",)]


def test_a_loop_inside_one_block_stops_at_every_until_tick_exactly():
    machine = run_both(COUNTED_LOOP, slices=(3, 4, 5, 6, 7, 50, 51, 203, 398))
    assert reg(machine, "s0") == 300 and machine.cpu.counters.instructions == 2 + 400 + 1


def test_a_fault_in_a_later_round_of_a_paged_loop_counts_like_single_steps():
    """The loop reads page after page until the third, unmapped, faults."""
    def setup(memory):
        map_page(memory, CODE_BASE, CODE_BASE)
        for page in range(2):
            map_page(memory, DATA_VIRT + 4096 * page, DATA_PHYS + 4096 * page)
    items = (li("t0", PAGE_DIR | PTB_ENABLE) + [("mtcr", "ptb", "t0")] + li("t1", DATA_VIRT)
             + ["loop:", ("lw", "t2", 0, "t1"), ("add", "s0", "s0", "t2"), ("sw", "s0", 0, "t1"),
                ("addi", "t1", "t1", 64), ("jal", "zero", "loop")])
    machine = run_both(items, setup, handler=[("mfcr", "a0", "epc"), ("halt",)], slices=(40, 41, 42))
    assert machine.cpu.cr[CR_CAUSE] & 0xFF == EXC_PAGE_FAULT
    assert reg(machine, "a0") == label_address(items, "loop") and reg(machine, "t1") == DATA_VIRT + 8192
    assert machine.cpu.counters.tlb_hits > 0 and machine.cpu.counters.tlb_misses == 4


def test_a_loop_that_stores_over_its_own_body_runs_the_new_instruction_next_round():
    """Round one rewrites `addi s0, s0, 1` (the loop's first instruction) into `addi s0, s0, 100`."""
    new = word("addi", rd=REG_NUMBERS["s0"], rs1=REG_NUMBERS["s0"], imm=100)
    items = (li("t0", 3) + li("t1", new) + li("t2", 0) + ["loop:", ("addi", "s0", "s0", 1)]
             + [("sw", "t1", 0, "t2"), ("addi", "t0", "t0", -1), ("bne", "t0", "zero", "loop"), ("halt",)])
    loop = label_address(items, "loop")
    items[4:6] = li("t2", loop)
    machine = run_both(items)
    assert reg(machine, "s0") == 1 + 100 + 100


def test_a_store_over_a_chained_successor_is_seen_when_the_chain_is_followed_again():
    """The loop branches forward to `tail` each round (a chain within the page);
    round two rewrites tail's first instruction."""
    new = word("addi", rd=REG_NUMBERS["s1"], rs1=REG_NUMBERS["s1"], imm=10)
    items = (li("t0", 3) + li("t1", new) + li("t2", 0)
             + ["loop:", ("addi", "s0", "s0", 1), ("addi", "t3", "zero", 2), ("bne", "t0", "t3", "tail"),
                ("sw", "t1", 0, "t2"),
                "tail:", ("addi", "s1", "s1", 1), ("addi", "t0", "t0", -1), ("bne", "t0", "zero", "loop"),
                ("halt",)])
    items[4:6] = li("t2", label_address(items, "tail"))
    machine = run_both(items)
    assert reg(machine, "s0") == 3 and reg(machine, "s1") == 1 + 10 + 10


def test_remapping_the_code_page_after_tlbinv_runs_the_code_of_the_new_frame():
    """The same code page is copied to OTHER_CODE with one instruction changed;
    the program remaps its own page there and flushes it with tlbinv."""
    items = (li("t0", PAGE_DIR | PTB_ENABLE) + [("mtcr", "ptb", "t0")] + li("t0", 2)
             + ["loop:", ("jal", "zero", "body"), "body:", ("addi", "s0", "s0", 1),
                ("addi", "t0", "t0", -1), ("beq", "t0", "zero", "done"),
                ("sw", "a1", 0, "a2"), ("tlbinv", "a3"), ("jal", "zero", "loop"),
                "done:", ("halt",)])
    body = label_address(items, "body")
    pte = PAGE_TABLE + 4 * ((CODE_BASE >> 12) & 0x3FF)

    def setup(memory):
        map_page(memory, CODE_BASE, CODE_BASE)
        map_page(memory, PAGE_TABLE, PAGE_TABLE)
        memory.write_bytes(OTHER_CODE, memory.read_bytes(CODE_BASE, 4096))
        memory.write(OTHER_CODE + body - CODE_BASE, 4, word("addi", rd=REG_NUMBERS["s0"],
                                                            rs1=REG_NUMBERS["s0"], imm=50))
    machine = run_both(items, setup, regs={"a1": OTHER_CODE | PTE_P | PTE_W, "a2": pte, "a3": CODE_BASE})
    assert reg(machine, "s0") == 1 + 50 and machine.cpu.state == "halted"


def test_tlbinv_of_one_page_keeps_the_cached_blocks_of_the_other_pages():
    machine = build(COUNTED_LOOP)
    machine.run()
    cpu = machine.cpu
    other = CODE_BASE + 0x3000
    cpu._current[other] = "a block of another page"
    cpu._live[cpu._context][other >> 12] = {other: cpu._current[other]}
    cpu.invalidate_tlb(CODE_BASE + 0x10)
    assert other in cpu._current and not any(pc >> 12 == CODE_BASE >> 12 for pc in cpu._current)


def test_a_store_to_one_code_page_drops_only_the_blocks_translated_from_it():
    machine = build(COUNTED_LOOP)
    machine.run()
    cpu = machine.cpu
    cached = set(cpu._current)
    machine.memory.write(CODE_BASE + 0x2000, 4, 0)          # not a code page: nothing changes
    assert set(cpu._current) == cached and cached
    machine.memory.write(CODE_BASE + 0xFFC, 4, 0)           # the loop's page
    assert not cpu._current


def test_an_epc_of_a_trap_in_a_loop_round_is_the_faulting_instruction():
    """Division by zero in the fifth round: epc and the retired count are exact."""
    items = li("t0", 9) + ["loop:", ("addi", "t0", "t0", -1), ("addi", "t1", "t0", -4),
                           ("div", "s0", "t0", "t1"), ("jal", "zero", "loop")]
    machine = run_both(items, handler=[("halt",)])
    assert machine.cpu.cr[CR_EPC] == label_address(items, "loop") + 8
    assert machine.cpu.counters.instructions == 2 + 4 * 4 + 2 + 1


def test_a_division_into_r0_ending_a_block_goes_on_to_the_next_instruction():
    """Sliced so that the `div zero, ...` runs as a one-instruction block of its own."""
    items = [("addi", "t0", "zero", 7), ("addi", "t1", "zero", 2), ("div", "zero", "t0", "t1"),
             ("addi", "s0", "zero", 1), ("halt",)]
    machine = run_both(items, slices=(2, 3))
    assert reg(machine, "s0") == 1 and machine.cpu.counters.instructions == 5


# --- exits in place (cpu.py module doc) ---------------------------------------------------------

READ_ONLY_VIRT, READ_ONLY_PHYS = 0x00800000, 0x60000
STORE_LOOP = (li("t0", PAGE_DIR | PTB_ENABLE) + [("mtcr", "ptb", "t0")] + li("t0", READ_ONLY_VIRT) + li("t1", 6)
              + ["loop:", ("addi", "s0", "s0", 1), ("sw", "t1", 0, "t0"), ("addi", "t0", "t0", 4),
                 ("addi", "t1", "t1", -1), ("bne", "t1", "zero", "loop"), ("halt",)])


def map_store_loop(memory):
    """The code page, and the data page read-only: every store of STORE_LOOP page-faults."""
    map_page(memory, CODE_BASE, CODE_BASE)
    map_page(memory, READ_ONLY_VIRT, READ_ONLY_PHYS)
    pte = PAGE_TABLE + 4096 * (READ_ONLY_VIRT >> 22) + 4 * ((READ_ONLY_VIRT >> 12) & 0x3FF)
    memory.write(pte, 4, READ_ONLY_PHYS | PTE_P)


def run_under_a_store_emulating_vmm(traced: bool, quiet: bool, slices=()):
    """STORE_LOOP under a VMM that emulates each faulting `sw t1, 0(t0)` (the
    word, written at the data page's frame, one tick, pc after it) and
    returns `quiet`.  (end state, the exits it saw, the run loop's entries)."""
    machine = build(STORE_LOOP, map_store_loop)
    cpu, exits, entries = machine.cpu, [], [0]

    def vm_exit(cause, epc, badaddr):
        exits.append((cause, epc, badaddr, cpu.exit_word, cpu.ticks))
        machine.memory.write(READ_ONLY_PHYS + (badaddr & 0xFFF), 4, cpu.regs[REG_NUMBERS["t1"]])
        cpu.ticks += 1
        cpu.pc = epc + 4
        return quiet

    def counted(until, run_blocks=cpu._run_blocks):
        entries[0] += 1
        run_blocks(until)

    cpu.vm_exit, cpu._run_blocks = vm_exit, counted
    if traced:
        cpu.trace = lambda *event: None
    for until in slices:
        cpu.run(until)
    machine.run(max_instructions=10_000)
    return state(machine), exits, entries[0]


def test_a_quiet_store_exit_goes_on_in_its_block_and_ends_as_taken_the_full_way():
    """Taken in place (quiet), after unwinding the block (not quiet) and one
    instruction at a time (traced, never in place): the same exits, at the
    same ticks, with the same words, the same end and counters; in place the
    run loop is not entered again after each of the six exits."""
    (traced, exits, _), (full, full_exits, full_entries), (quiet, quiet_exits, quiet_entries) = (
        run_under_a_store_emulating_vmm(traced, quiet) for traced, quiet in ((True, False), (False, False),
                                                                              (False, True)))
    store = word("sw", rs1=REG_NUMBERS["t0"], rs2=REG_NUMBERS["t1"], imm=0)
    assert [exit[3] for exit in exits] == [store] * 6 and exits == full_exits == quiet_exits
    assert traced == full == quiet and traced[4] == "halted"
    assert full_entries - quiet_entries == 6


def test_a_quiet_store_exit_leaves_the_block_at_an_until_tick_as_the_run_loop_would():
    slices = (8, 9, 10, 11, 17)
    ends = [run_under_a_store_emulating_vmm(traced, quiet, slices)[:2] for traced, quiet in ((True, False),
                                                                                            (False, True))]
    assert ends[0] == ends[1]


def test_a_quiet_store_exit_that_stops_the_cpu_leaves_the_block_after_the_store():
    machine = build(STORE_LOOP, map_store_loop)
    cpu = machine.cpu

    def vm_exit(cause, epc, badaddr):
        cpu.ticks, cpu.pc = cpu.ticks + 1, epc + 4
        cpu.request_stop("monitor: enough")
        return True

    cpu.vm_exit = vm_exit
    cpu.run(1000)
    store = label_address(STORE_LOOP, "loop") + 4
    assert (cpu.stop_reason, cpu.pc, reg(machine, "s0")) == ("monitor: enough", store + 4, 1)
    assert cpu.counters.instructions == cpu.ticks == (store - CODE_BASE) // 4 + 1      # up to the store, emulated


def test_a_store_exit_after_a_trace_hook_turned_the_trace_off_ends_as_with_the_trace_on():
    """The hook drops the trace at the loop's first instruction, so the store
    after it, still in the traced loop, takes its exit in place; the VMM lets
    it retry a few times, then emulates it.  The end is the traced run's."""
    ends = []
    for drop in (False, True):
        machine = build(STORE_LOOP, map_store_loop)
        cpu, tries = machine.cpu, []
        loop = label_address(STORE_LOOP, "loop")

        def vm_exit(cause, epc, badaddr):
            tries.append(epc)
            if len(tries) % 3 == 0:         # every third try: emulated, as a traced write
                machine.memory.write(READ_ONLY_PHYS + (badaddr & 0xFFF), 4, cpu.regs[REG_NUMBERS["t1"]])
                cpu.ticks, cpu.pc = cpu.ticks + 1, epc + 4
            return False

        def trace(kind, pc, *rest):
            if drop and kind == "insn" and pc == loop:
                cpu.trace = None

        cpu.vm_exit, cpu.trace = vm_exit, trace
        cpu.run(1000)
        ends.append((state(machine), tries))
    assert ends[0] == ends[1] and len(ends[0][1]) == 18
