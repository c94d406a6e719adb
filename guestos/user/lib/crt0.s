# crt0.s: the entry point of every Kite guest OS user program.
#
# The kernel starts a process at _start in user mode with sp = USTACK_TOP and
# every other register unspecified.  _start calls main() (no arguments) and
# exits with main's return value as the process status.

        .text
        .globl  _start
        .type   _start, @function
_start:
        call    main
        call    exit                    # a0 = main's return value; exit does not return
        .size   _start, . - _start
