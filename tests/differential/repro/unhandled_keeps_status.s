# Reproducer: an exception while tvec is 0 stops the machine; under the VMM the
# guest's status is left changed as if the trap had been taken.
#
# docs/isa.md, "Trap entry and rfe": "any exception while tvec is 0 (epc, cause
# and badaddr are still recorded; status and pc are left as they were)".
#
# Bare machine and simulator: status stays 0x0000A50B (KM, IE, PIE, UF 0xA5).
# VMM: Monitor.reflect calls VirtualCPU.enter_trap, which sets PKM = KM,
# PIE = IE, KM = 1, IE = 0 before it returns tvec = 0, and only then is the
# guest stopped: status reads 0x0000A50D (KM, PKM, PIE) (vmm/monitor/vcpu.py,
# 1e366ab: lines 69-72, before monitor.py line 220 checks tvec).
# Found by bench/fuzz.py; fails at 1e366ab, fixed by 11874e7 (asm/arch.py's one
# trap entry): kept as a regression test.
#
# Run: .venv/bin/python bench/fuzz.py --replay tests/differential/repro/unhandled_keeps_status.s
        .text
        .globl _start
_start:
        li      t0, 0xA50B              # KM | IE | PIE, user flags 0xA5
        mtcr    status, t0
        syscall                         # tvec is 0: the machine stops here
        halt
