# Reproducer: when the VMM stops a guest while resuming it (here: the virtual
# timer interrupt it injects finds tvec = 0), the machine goes on running that
# guest's instructions until its next VM exit.
#
# docs/isa.md, "Trap entry and rfe": "any exception while tvec is 0 ... stop[s]
# the machine" and "Interrupts": "An interrupt is taken before an instruction
# runs, when IE = 1 and at least one line is asserted".  docs/vmm.md: a VM is
# stopped when it "faults with no trap vector".
#
# Bare machine and simulator: the one-shot timer fires 10 ticks after the CTRL
# store; the interrupt finds tvec 0 and the machine stops with a0 = 8 (8 addi
# retired) and 14 instructions.  VMM: Monitor._resume (vmm/monitor/monitor.py,
# abee56c: line 285) decides whether to schedule away from the current VM
# *before* line 288 calls _inject, whose reflect finds tvec 0 and calls
# vm.crash() (line 240); nothing then stops the CPU, so the stopped guest retires
# the remaining addi (a0 = 20, 27 instructions) up to the halt, its next exit.
# Any instruction it runs there can still write registers, RAM or the console,
# and its next exception overwrites cause and epc (the fuzz found that form).
# Found by bench/fuzz.py; fails at 1e366ab and at abee56c.
#
# Run: .venv/bin/python bench/fuzz.py --replay tests/differential/repro/stopped_guest_runs_on.s
        .text
        .globl _start
_start:
        li      t0, 0xF0001000
        li      t1, 10
        sw      t1, 4(t0)               # INTERVAL 10
        li      t1, 1
        sw      t1, 0(t0)               # CTRL: ENABLE (one-shot)
        ei                              # IE = 1 with tvec = 0
        addi    a0, a0, 1
        addi    a0, a0, 1
        addi    a0, a0, 1
        addi    a0, a0, 1
        addi    a0, a0, 1
        addi    a0, a0, 1
        addi    a0, a0, 1
        addi    a0, a0, 1
        addi    a0, a0, 1
        addi    a0, a0, 1
        addi    a0, a0, 1
        addi    a0, a0, 1
        addi    a0, a0, 1
        addi    a0, a0, 1
        addi    a0, a0, 1
        addi    a0, a0, 1
        addi    a0, a0, 1
        addi    a0, a0, 1
        addi    a0, a0, 1
        addi    a0, a0, 1
        halt
