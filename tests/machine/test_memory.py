"""Physical memory: the RAM contract, and decoded-code tracking seen from the CPU
(a write to a page holding translated code, by a guest store, DMA or the host,
makes the CPU run the new code)."""

from __future__ import annotations

import pytest

from asm.isa import BY_MNEMONIC, REG_NUMBERS, encode
from vmm.machine.errors import BusError
from vmm.machine.memory import PhysicalMemory
from tests.machine.cpuprog import CODE_BASE, label_address, machine_with, words


def test_read_and_write_are_little_endian_for_every_width():
    memory = PhysicalMemory(0x2000)
    memory.write(0x100, 4, 0x11223344)
    assert memory.read_bytes(0x100, 4) == b"\x44\x33\x22\x11"
    assert (memory.read(0x100, 2), memory.read(0x102, 1)) == (0x3344, 0x22)
    memory.write(0x101, 2, 0xAABBCC)                        # only the low 16 bits
    assert memory.read(0x100, 4) == 0x11BBCC44


@pytest.mark.parametrize("operation", [
    lambda memory: memory.read(0x2000, 1),
    lambda memory: memory.read(0x1FFE, 4),
    lambda memory: memory.write(0x2000, 4, 0),
    lambda memory: memory.read_bytes(0x1000, 0x1001),
    lambda memory: memory.write_bytes(0x1FFF, b"ab"),
    lambda memory: memory.read(-4, 4),
])
def test_access_outside_ram_raises_bus_error_and_writes_nothing(operation):
    memory = PhysicalMemory(0x2000)
    with pytest.raises(BusError):
        operation(memory)
    assert memory.read_bytes(0, 0x2000) == bytes(0x2000)


def test_contains_is_exact_at_the_end_of_ram():
    memory = PhysicalMemory(0x2000)
    assert memory.contains(0x1FFC, 4) and not memory.contains(0x1FFD, 4) and not memory.contains(-1, 1)


def test_size_must_be_whole_pages():
    with pytest.raises(ValueError, match="multiple of 0x1000"):
        PhysicalMemory(0x1800)


def test_writes_to_code_pages_notify_listeners_once_per_page_until_retranslated():
    memory = PhysicalMemory(0x4000)
    seen = []
    memory.code_write_listeners.append(seen.append)
    memory.code_pages.update({1, 3})
    memory.write(0x0FFC, 4, 1)                 # page 0: no code
    memory.write_bytes(0x1FFE, b"abcd")        # pages 1 and 2
    memory.write(0x1000, 4, 1)                 # page 1 no longer holds translations
    memory.write_bytes(0x3000, b"")            # an empty write touches nothing
    memory.write(0x3004, 1, 1)
    assert seen == [1, 3] and memory.code_pages == set()


LOOP = [("addi", "t0", "zero", 3), "loop:", ("addi", "s0", "s0", 1), "patch:",
        ("addi", "t0", "t0", -1), ("bne", "t0", "zero", "loop"), ("halt",)]
ADD_TEN = encode(BY_MNEMONIC["addi"], {"rd": REG_NUMBERS["s0"], "rs1": REG_NUMBERS["s0"], "imm": 10})


def test_guest_store_over_code_already_run_makes_the_new_code_run():
    # `body` runs once, then each pass overwrites its first instruction with `addi s0, s0, 10`
    items = [("addi", "t1", "zero", 3), "loop:", ("jal", "ra", "body"), ("sw", "a1", 0, "a0"),
             ("addi", "t1", "t1", -1), ("bne", "t1", "zero", "loop"), ("halt",),
             "body:", ("addi", "s0", "s0", 1), ("jalr", "zero", "ra", 0)]
    machine = machine_with(items)
    cpu = machine.cpu
    cpu.regs[REG_NUMBERS["a0"]] = label_address(items, "body")
    cpu.regs[REG_NUMBERS["a1"]] = ADD_TEN
    machine.run()
    assert cpu.regs[REG_NUMBERS["s0"]] == 1 + 10 + 10


def test_store_into_the_running_block_takes_effect_for_the_next_instruction():
    # the store patches the instruction right after it, inside the same block
    items = [("sw", "a1", 0, "a0"), "next:", ("addi", "s0", "s0", 1), ("halt",)]
    machine = machine_with(items)
    cpu = machine.cpu
    cpu.regs[REG_NUMBERS["a0"]] = label_address(items, "next")
    cpu.regs[REG_NUMBERS["a1"]] = ADD_TEN
    machine.run()
    assert cpu.regs[REG_NUMBERS["s0"]] == 10


@pytest.mark.parametrize("writer", ["write", "write_bytes"])
def test_host_or_dma_write_between_runs_replaces_translated_code(writer):
    machine = machine_with(LOOP)
    cpu = machine.cpu
    cpu.run(7)                                         # the loop body has run (and is cached)
    patch = label_address(LOOP, "loop")
    if writer == "write":
        machine.memory.write(patch, 4, ADD_TEN)
    else:
        machine.memory.write_bytes(patch, ADD_TEN.to_bytes(4, "little"))
    machine.run()
    assert cpu.regs[REG_NUMBERS["s0"]] == 2 + 10      # two passes before, one after


def test_words_helper_resolves_labels_to_word_offsets():
    assert words([("jal", "zero", "end"), "end:"]) == [
        encode(BY_MNEMONIC["jal"], {"rd": 0, "target": 1})]
    assert label_address(LOOP, "patch") == CODE_BASE + 8


# --- the write-watch (dirty logging for live migration) -------------------------------------------

def test_the_first_write_to_a_watched_page_logs_it_and_lifts_the_watch():
    memory = PhysicalMemory(0x4000)
    memory.watch({1, 2})
    memory.write(0x1004, 4, 7)                     # page 1
    memory.write_bytes(0x2FFE, b"abcd")            # pages 2 and 3: only 2 is watched
    memory.write(0x0000, 4, 1)                     # page 0: not watched
    assert memory.dirty == {1, 2} and memory.watched == set()
    assert memory.unwatch() == {1, 2} and memory.dirty == set()


def test_a_page_written_before_the_watch_is_not_dirty():
    memory = PhysicalMemory(0x4000)
    memory.write(0x1000, 4, 7)
    memory.watch({1})
    assert memory.unwatch() == set() and memory.watched == set()


def test_a_cpu_store_through_the_fast_tables_is_logged_once_the_watch_is_armed():
    """The loop stores to DATA 100 times: the first stores fill the CPU's fast write
    table for its page; arming the watch between two runs must empty that table, or the
    later stores would go to RAM unseen."""
    data = 0x20000
    items = [("lui", "t1", data >> 12), ("addi", "t0", "zero", 100),
             "loop:", ("sw", "t0", 0, "t1"), ("addi", "t0", "t0", -1), ("bne", "t0", "zero", "loop"),
             ("halt",)]
    machine = machine_with(items)
    machine.advance(50)
    assert machine.memory.read(data, 4) != 0
    machine.watch_writes({data >> 12, (data >> 12) + 1})
    machine.advance(None)
    assert machine.memory.unwatch() == {data >> 12}
    assert machine.memory.read(data, 4) == 1
