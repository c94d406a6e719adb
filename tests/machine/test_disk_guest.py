"""The block device end to end: a kernel-mode guest reads a sector by DMA, waits in
wfi for the completion interrupt, prints what arrived, writes it to another
sector, and the image file changes in exactly that sector."""

from __future__ import annotations

from click.testing import CliRunner

from asm.assembler import assemble
from asm.linker import LinkOptions, link
from vmm.cli import run

SECTOR = 512
GUEST = """
        .equ UART, 0xF0000000
        .equ DISK, 0xF0002000
        .equ POWER, 0xF0003000
        .text
        .globl _start
_start: la      sp, stack_top
        la      t0, handler
        mtcr    tvec, t0
        li      t0, DISK
        li      t1, 1
        sw      t1, 0x14(t0)            # CTRL: completion interrupt on
        li      t1, 1
        sw      t1, 0x00(t0)            # SECTOR 1
        la      t1, buffer
        sw      t1, 0x04(t0)            # DMA_ADDR
        li      t1, 1
        sw      t1, 0x08(t0)            # COUNT 1
        sw      t1, 0x0C(t0)            # CMD 1: read
        ei
1:      wfi
        la      t1, interrupts
        lw      t1, 0(t1)
        beqz    t1, 1b
        di
        la      a0, buffer              # print the sector's text (NUL-terminated)
        li      t0, UART
2:      lbu     t1, 0(a0)
        beqz    t1, 3f
        sw      t1, 0(t0)
        addi    a0, a0, 1
        j       2b
3:      li      t0, DISK                # write the buffer to sector 2, polling this time
        sw      zero, 0x14(t0)
        li      t1, 2
        sw      t1, 0x00(t0)
        sw      t1, 0x0C(t0)            # CMD 2: write
4:      lw      t1, 0x10(t0)            # STATUS
        andi    t1, t1, 4               # DONE
        beqz    t1, 4b
        sw      zero, 0x1C(t0)          # ACK
        li      t0, POWER
        li      t1, 9
        sw      t1, 0(t0)
        halt
handler:
        push    t0
        push    t1
        mfcr    t0, cause
        li      t1, 0x80000002          # the disk's interrupt
        bne     t0, t1, 5f
        li      t0, DISK
        sw      zero, 0x1C(t0)          # ACK: the line drops
        la      t0, interrupts
        lw      t1, 0(t0)
        addi    t1, t1, 1
        sw      t1, 0(t0)
5:      pop     t1
        pop     t0
        rfe
        .data
interrupts: .word 0
        .bss
        .balign 512
buffer: .space 512
        .space 1024
stack_top:
"""


def test_dma_read_with_interrupt_then_polled_write_changes_only_the_written_sector(tmp_path):
    image = tmp_path / "disk.elf"
    image.write_bytes(link([assemble(GUEST, "disk.s")], LinkOptions(text_address=0x100000)))
    disk = tmp_path / "disk.img"
    original = bytes(SECTOR) + b"sector one says hello\n".ljust(SECTOR, b"\0") + b"\xAA" * SECTOR * 2
    disk.write_bytes(original)
    result = CliRunner().invoke(run, [str(image), "--bare", "--disk", str(disk), "--stats"])
    assert result.stdout_bytes == b"sector one says hello\n"
    assert result.exit_code == 9, result.stderr
    assert "    disk: 1" in result.stderr                       # one completion interrupt taken
    after = disk.read_bytes()
    assert after[2 * SECTOR:3 * SECTOR] == original[SECTOR:2 * SECTOR]
    assert after[:2 * SECTOR] == original[:2 * SECTOR] and after[3 * SECTOR:] == original[3 * SECTOR:]


def test_read_only_disk_keeps_the_image_file_unchanged(tmp_path):
    image = tmp_path / "disk.elf"
    image.write_bytes(link([assemble(GUEST, "disk.s")], LinkOptions(text_address=0x100000)))
    disk = tmp_path / "disk.img"
    original = bytes(SECTOR) + b"read only\n".ljust(SECTOR, b"\0") + bytes(SECTOR * 2)
    disk.write_bytes(original)
    result = CliRunner().invoke(run, [str(image), "--bare", "--disk", str(disk), "--disk-readonly"])
    assert result.stdout_bytes == b"read only\n" and result.exit_code == 9
    assert disk.read_bytes() == original
