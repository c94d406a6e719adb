"""Device models, bus and interrupt lines, driven through their registers
exactly as a guest would (offset, width, value), with a hand-moved clock."""

from __future__ import annotations

import io
import os

import pytest

from asm.isa import IRQ_CONSOLE, IRQ_DISK, IRQ_TIMER
from vmm.machine.bus import Bus, OverlapError, ZeroSizedRangeError
from vmm.machine.devices import disk as disk_regs
from vmm.machine.devices import timer as timer_regs
from vmm.machine.devices import uart as uart_regs
from vmm.machine.devices.disk import DISK_LATENCY_TICKS, SECTOR_SIZE, Disk, DiskImage
from vmm.machine.devices.power import Power
from vmm.machine.devices.timer import Timer
from vmm.machine.devices.uart import ConsoleInput, Uart
from vmm.machine.errors import BusError, DiskError
from vmm.machine.irq import InterruptLines


class Clock:
    """A tick counter the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def line(irq: InterruptLines, number: int) -> bool:
    return bool(irq.pending >> number & 1)


# --- bus -----------------------------------------------------------------------------


class Recorder:
    """A device that records the accesses it sees."""

    def __init__(self, name: str):
        self.name = name
        self.seen: list[tuple] = []

    def read(self, offset, width):
        self.seen.append(("read", offset, width))
        return 0x1234

    def write(self, offset, width, value):
        self.seen.append(("write", offset, width, value))

    def next_event(self):
        return None

    def advance(self, now):
        pass


def test_bus_hands_devices_offsets_not_addresses_and_counts_accesses():
    bus, device = Bus(), Recorder("rec")
    bus.map(0xF0005000, 0x1000, device)
    assert bus.read(0xF0005008, 4) == 0x1234
    bus.write(0xF0005FFC, 2, 7)
    assert device.seen == [("read", 8, 4), ("write", 0xFFC, 2, 7)]
    assert (bus.reads, bus.writes) == (1, 1)
    assert bus.devices == [device]


def test_bus_access_with_nothing_mapped_raises_bus_error_naming_the_address():
    bus = Bus()
    bus.map(0xF0000000, 0x1000, Recorder("rec"))
    with pytest.raises(BusError, match="0xf0001000"):
        bus.read(0xF0001000, 4)
    with pytest.raises(BusError):
        bus.write(0xEFFFFFFC, 4, 0)
    assert bus.is_mmio(0xF0000FFF) and not bus.is_mmio(0xF0001000)
    assert (bus.reads, bus.writes) == (0, 0)


def test_bus_refuses_overlapping_ranges_naming_both_devices():
    bus = Bus()
    bus.map(0xF0000000, 0x2000, Recorder("first"))
    with pytest.raises(OverlapError, match="second.*overlaps first"):
        bus.map(0xF0001000, 0x1000, Recorder("second"))
    bus.map(0xF0002000, 0x1000, Recorder("adjacent"))   # touching is not overlapping
    assert [d.name for d in bus.devices] == ["first", "adjacent"]


def test_bus_refuses_a_zero_sized_range():
    with pytest.raises(ZeroSizedRangeError, match="zero-sized range for empty"):
        Bus().map(0xF0000000, 0, Recorder("empty"))


def test_interrupt_lines_are_a_bitmask_of_asserted_irqs():
    irq = InterruptLines()
    irq.assert_line(2)
    irq.assert_line(0)
    irq.assert_line(2)
    assert irq.pending == 0b101
    irq.clear_line(2)
    irq.clear_line(1)
    assert irq.pending == 0b001


# --- UART ----------------------------------------------------------------------------


def make_uart(input_bytes=b""):
    irq, out = InterruptLines(), io.BytesIO()
    return Uart(irq, out, ConsoleInput(input_bytes)), irq, out


def test_uart_tx_writes_the_low_byte_of_each_word_store():
    uart, _, out = make_uart()
    for value in (0x68, 0x169, 0xFFFFFF0A):
        uart.write(uart_regs.UART_TX, 4, value)
    assert out.getvalue() == b"hi\n"


def test_uart_ignores_other_widths_and_unknown_offsets():
    uart, _, out = make_uart(b"x")
    uart.write(uart_regs.UART_TX, 1, 0x41)
    uart.write(0x10, 4, 0x41)
    assert out.getvalue() == b""
    assert uart.read(uart_regs.UART_RX, 1) == 0       # a byte read does not consume
    assert uart.read(0x40, 4) == 0
    assert uart.read(uart_regs.UART_RX, 4) == ord("x")


def test_uart_rx_consumes_scripted_input_byte_by_byte_then_reports_eof():
    uart, _, _ = make_uart(b"ab")
    ready_tx = uart_regs.STATUS_RX_READY | uart_regs.STATUS_TX_READY
    assert uart.read(uart_regs.UART_STATUS, 4) == ready_tx
    assert uart.read(uart_regs.UART_RX, 4) == ord("a")
    assert uart.read(uart_regs.UART_STATUS, 4) == ready_tx
    assert uart.read(uart_regs.UART_RX, 4) == ord("b")
    assert uart.read(uart_regs.UART_STATUS, 4) == uart_regs.STATUS_TX_READY | uart_regs.STATUS_RX_EOF
    assert uart.read(uart_regs.UART_RX, 4) == 0


def test_uart_rx_interrupt_follows_ready_and_enable():
    uart, irq, _ = make_uart(b"k")
    assert not line(irq, IRQ_CONSOLE)                     # input waiting, interrupt not enabled
    uart.write(uart_regs.UART_CTRL, 4, uart_regs.CTRL_RX_IRQ_ENABLE)
    assert line(irq, IRQ_CONSOLE)
    assert uart.read(uart_regs.UART_CTRL, 4) == uart_regs.CTRL_RX_IRQ_ENABLE
    uart.write(uart_regs.UART_CTRL, 4, 0)
    assert not line(irq, IRQ_CONSOLE)
    uart.write(uart_regs.UART_CTRL, 4, uart_regs.CTRL_RX_IRQ_ENABLE)
    assert uart.read(uart_regs.UART_RX, 4) == ord("k")
    assert not line(irq, IRQ_CONSOLE)                     # consumed the last byte


def test_uart_interactive_input_is_read_a_line_at_a_time_when_polled():
    tty = io.BytesIO(b"one\ntwo\n")
    uart = Uart(InterruptLines(), io.BytesIO(), ConsoleInput(interactive=tty))
    assert tty.tell() == 0                                 # nothing read before the guest asks
    assert uart.read(uart_regs.UART_STATUS, 4) & uart_regs.STATUS_RX_READY
    assert tty.tell() == 4
    assert bytes(uart.read(uart_regs.UART_RX, 4) for _ in range(4)) == b"one\n"
    assert tty.tell() == 4
    assert uart.read(uart_regs.UART_RX, 4) == ord("t")
    for _ in range(3):
        uart.read(uart_regs.UART_RX, 4)
    assert uart.read(uart_regs.UART_STATUS, 4) & uart_regs.STATUS_RX_EOF


def test_console_input_from_a_non_tty_stdin_reads_everything_at_once():
    stream = io.BytesIO(b"all of it")
    console = ConsoleInput.from_stdin(stream, is_tty=False)
    assert stream.tell() == 9 and console.pop() == ord("a") and not console.interactive


# --- timer ---------------------------------------------------------------------------


def make_timer():
    irq, clock, changes = InterruptLines(), Clock(), []
    return Timer(irq, clock, lambda: changes.append(clock.now)), irq, clock, changes


def start_timer(timer, interval, ctrl):
    timer.write(timer_regs.TIMER_INTERVAL, 4, interval)
    timer.write(timer_regs.TIMER_CTRL, 4, ctrl)


def test_one_shot_timer_fires_exactly_interval_ticks_after_enable():
    timer, irq, clock, changes = make_timer()
    clock.now = 500
    start_timer(timer, 100, timer_regs.CTRL_ENABLE)
    assert timer.next_event() == 600 and changes == [500]
    clock.now = 560
    assert timer.read(timer_regs.TIMER_COUNT, 4) == 40
    timer.advance(599)
    assert not line(irq, IRQ_TIMER)
    timer.advance(600)
    assert line(irq, IRQ_TIMER)
    assert timer.next_event() is None
    clock.now = 700
    assert timer.read(timer_regs.TIMER_COUNT, 4) == 0


def test_timer_interrupt_stays_asserted_until_ack():
    timer, irq, clock, _ = make_timer()
    start_timer(timer, 10, timer_regs.CTRL_ENABLE)
    timer.advance(10)
    timer.advance(50)
    assert line(irq, IRQ_TIMER)
    timer.write(timer_regs.TIMER_ACK, 4, 0)
    assert not line(irq, IRQ_TIMER)
    assert timer.fired == 1


def test_periodic_timer_reloads_from_each_expiry_without_drift():
    timer, irq, clock, _ = make_timer()
    clock.now = 3
    start_timer(timer, 10, timer_regs.CTRL_ENABLE | timer_regs.CTRL_PERIODIC)
    expiries = []
    for now in range(3, 60):
        timer.advance(now)
        if line(irq, IRQ_TIMER):
            expiries.append(now)
            timer.write(timer_regs.TIMER_ACK, 4, 0)
    assert expiries == [13, 23, 33, 43, 53]
    assert timer.next_event() == 63


def test_timer_disable_and_zero_interval_never_fire():
    timer, irq, clock, _ = make_timer()
    start_timer(timer, 10, timer_regs.CTRL_ENABLE)
    timer.write(timer_regs.TIMER_CTRL, 4, 0)
    assert timer.next_event() is None
    start_timer(timer, 0, timer_regs.CTRL_ENABLE | timer_regs.CTRL_PERIODIC)
    timer.advance(1000)
    assert timer.next_event() is None and not line(irq, IRQ_TIMER)
    assert timer.read(timer_regs.TIMER_CTRL, 4) == timer_regs.CTRL_ENABLE | timer_regs.CTRL_PERIODIC


# --- disk ----------------------------------------------------------------------------


def sectors(count: int) -> bytes:
    """Sector n filled with byte n + 1."""
    return b"".join(bytes([n + 1]) * SECTOR_SIZE for n in range(count))


def make_disk(physical_memory, image: DiskImage, mem_size=0x10000):
    irq, clock, memory = InterruptLines(), Clock(), physical_memory(mem_size)
    return Disk(irq, memory, image, clock), irq, clock, memory


def command(disk, cmd, sector, dma_addr, count, irq_enable=True):
    disk.write(disk_regs.DISK_CTRL, 4, disk_regs.CTRL_IRQ_ENABLE if irq_enable else 0)
    disk.write(disk_regs.DISK_SECTOR, 4, sector)
    disk.write(disk_regs.DISK_DMA_ADDR, 4, dma_addr)
    disk.write(disk_regs.DISK_COUNT, 4, count)
    disk.write(disk_regs.DISK_CMD, 4, cmd)


def test_disk_read_lands_in_memory_after_the_latency_with_done_and_interrupt(physical_memory):
    disk, irq, clock, memory = make_disk(physical_memory, DiskImage(sectors(4)))
    clock.now = 100
    command(disk, disk_regs.CMD_READ, 1, 0x3000, 2)
    assert disk.read(disk_regs.DISK_STATUS, 4) == disk_regs.STATUS_BUSY
    assert disk.next_event() == 100 + DISK_LATENCY_TICKS
    disk.advance(100 + DISK_LATENCY_TICKS - 1)
    assert memory.read_bytes(0x3000, 4) == bytes(4) and not line(irq, IRQ_DISK)
    disk.advance(100 + DISK_LATENCY_TICKS)
    assert memory.read_bytes(0x3000, 2 * SECTOR_SIZE) == sectors(4)[SECTOR_SIZE:3 * SECTOR_SIZE]
    assert memory.read_bytes(0x3000 + 2 * SECTOR_SIZE, 4) == bytes(4)
    assert disk.read(disk_regs.DISK_STATUS, 4) == disk_regs.STATUS_DONE
    assert line(irq, IRQ_DISK) and disk.next_event() is None
    disk.write(disk_regs.DISK_ACK, 4, 0)
    assert disk.read(disk_regs.DISK_STATUS, 4) == 0 and not line(irq, IRQ_DISK)


def test_disk_without_irq_enable_completes_silently(physical_memory):
    disk, irq, _, _ = make_disk(physical_memory, DiskImage(sectors(1)))
    command(disk, disk_regs.CMD_READ, 0, 0x2000, 1, irq_enable=False)
    disk.advance(DISK_LATENCY_TICKS)
    assert disk.read(disk_regs.DISK_STATUS, 4) == disk_regs.STATUS_DONE and irq.pending == 0


def test_disk_write_copies_memory_into_sectors_and_marks_them_dirty(physical_memory):
    image = DiskImage(sectors(4))
    disk, _, _, memory = make_disk(physical_memory, image)
    memory.write_bytes(0x4000, b"\xAA" * SECTOR_SIZE)
    command(disk, disk_regs.CMD_WRITE, 2, 0x4000, 1)
    disk.advance(DISK_LATENCY_TICKS)
    assert image.read_sectors(2, 1) == b"\xAA" * SECTOR_SIZE
    assert image.read_sectors(3, 1) == sectors(4)[3 * SECTOR_SIZE:]
    assert image.dirty == {2}


@pytest.mark.parametrize("cmd, sector, dma_addr, count", [
    (disk_regs.CMD_READ, 3, 0x2000, 2),          # sectors 3..4 of a 4-sector disk
    (disk_regs.CMD_READ, 0, 0xFE00, 2),          # buffer runs past the end of RAM
    (disk_regs.CMD_WRITE, 0, 0xF0000000, 1),     # buffer in MMIO space
    (disk_regs.CMD_WRITE, 5, 0x2000, 1),         # start beyond capacity
    (7, 0, 0x2000, 1),                           # unknown command
])
def test_disk_bad_command_sets_error_and_transfers_nothing(physical_memory, cmd, sector, dma_addr, count):
    image = DiskImage(sectors(4))
    disk, irq, _, memory = make_disk(physical_memory, image)
    memory.write_bytes(0x2000, b"\x55" * 4)
    command(disk, cmd, sector, dma_addr, count)
    disk.advance(DISK_LATENCY_TICKS)
    assert disk.read(disk_regs.DISK_STATUS, 4) == disk_regs.STATUS_DONE | disk_regs.STATUS_ERROR
    assert line(irq, IRQ_DISK)
    assert image.data == sectors(4) and not image.dirty
    assert memory.read_bytes(0x2000, 4) == b"\x55" * 4


def test_disk_registers_read_back_and_capacity_is_read_only(physical_memory):
    disk, _, _, _ = make_disk(physical_memory, DiskImage(sectors(3)))
    disk.write(disk_regs.DISK_SECTOR, 4, 9)
    disk.write(disk_regs.DISK_CAPACITY, 4, 100)
    assert disk.read(disk_regs.DISK_SECTOR, 4) == 9
    assert disk.read(disk_regs.DISK_CAPACITY, 4) == 3
    assert disk.read(disk_regs.DISK_CAPACITY, 2) == 0
    assert disk.read(0x20, 4) == 0


def test_disk_command_while_busy_is_ignored(physical_memory):
    disk, _, clock, memory = make_disk(physical_memory, DiskImage(sectors(2)))
    command(disk, disk_regs.CMD_READ, 0, 0x2000, 1)
    clock.now = 10
    command(disk, disk_regs.CMD_READ, 1, 0x3000, 1)
    assert disk.next_event() == DISK_LATENCY_TICKS
    disk.advance(DISK_LATENCY_TICKS + 10)
    assert memory.read_bytes(0x2000, 1) == b"\x01" and memory.read_bytes(0x3000, 1) == b"\x00"


def test_disk_write_back_patches_only_dirty_sectors_of_the_current_file(tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(sectors(3))
    image = DiskImage.open(str(path))
    image.write_sectors(1, b"\xEE" * SECTOR_SIZE)
    image.data[2 * SECTOR_SIZE] = 0x77                   # changed in memory, not by a guest write
    path.write_bytes(b"\x99" * SECTOR_SIZE + sectors(3)[SECTOR_SIZE:])   # someone else edits sector 0
    assert image.write_back() == 1
    assert path.read_bytes() == (b"\x99" * SECTOR_SIZE + b"\xEE" * SECTOR_SIZE
                                 + sectors(3)[2 * SECTOR_SIZE:])
    assert not [name for name in os.listdir(tmp_path) if name != "disk.img"]


def test_disk_write_back_without_guest_writes_leaves_the_file_untouched(tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(sectors(2))
    before = os.stat(path)
    assert DiskImage.open(str(path)).write_back() == 0
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@pytest.mark.parametrize("contents, message", [
    (None, "cannot read disk image"),
    (b"", "size 0 is not a positive multiple of 512"),
    (bytes(700), "size 700 is not a positive multiple of 512"),
])
def test_disk_image_missing_or_short_is_a_disk_error(tmp_path, contents, message):
    path = tmp_path / "disk.img"
    if contents is not None:
        path.write_bytes(contents)
    with pytest.raises(DiskError, match=message):
        DiskImage.open(str(path))


def test_a_fifo_or_a_device_is_refused_without_blocking(tmp_path):
    """Opening a FIFO for reading would wait for a writer forever; /dev/zero would never end."""
    fifo = tmp_path / "disk.fifo"
    os.mkfifo(fifo)
    for path in (str(fifo), "/dev/zero"):
        with pytest.raises(DiskError, match="not a regular file"):
            DiskImage.open(path)


def test_a_disk_image_over_the_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr("vmm.machine.devices.disk.MAX_DISK_SIZE", 1024)
    path = tmp_path / "disk.img"
    path.write_bytes(sectors(3))
    with pytest.raises(DiskError, match="1536 bytes, more than"):
        DiskImage.open(str(path))


# --- power ---------------------------------------------------------------------------


def test_power_exit_records_the_low_byte_and_requests_a_stop():
    stops = []
    power = Power(stops.append)
    power.write(0x00, 1, 5)                           # wrong width: ignored
    assert power.exit_code is None and not stops
    power.write(0x00, 4, 0x1234)
    assert power.exit_code == 0x34
    assert stops == ["power off: exit code 52"]
    assert power.read(0x00, 4) == 0


def test_read_only_disk_image_keeps_guest_writes_in_memory_only(tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(sectors(2))
    image = DiskImage.open(str(path), read_only=True)
    image.write_sectors(0, b"\x01" * SECTOR_SIZE)
    assert image.write_back() == 0
    assert path.read_bytes() == sectors(2) and image.read_sectors(0, 1) == b"\x01" * SECTOR_SIZE
