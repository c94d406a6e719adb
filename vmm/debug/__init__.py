"""`kite debug`: stop a guest, step it, and look inside the TLB, the guest's
page tables and the VMM's (docs/debugger.md is the reference).

    cli.py       the `kite debug` command: `kite run`'s boot, with the session attached
    session.py   run control: step, continue, breakpoints, watchpoints, catchpoints, Ctrl-C
    target.py    what is being debugged (bare machine, simulator, VMM and its VMs): registers,
                 memory, address spaces, read without side effects on the guest
    walk.py      one address's whole translation, the TLB, page-table ranges, shadow and p2m views
    symbols.py   kernel and module symbols, address expressions
    console.py   the command console (stdlib cmd)

Invariant: the debugger never changes what the guest can observe.  It reads
memory and tables without setting A/D bits or touching the TLB, and it runs
the guest only through the machine's own loop with an instruction limit, so
a guest stepped or continued to its end prints what `kite run` prints.
"""
