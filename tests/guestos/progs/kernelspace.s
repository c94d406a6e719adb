# kernelspace: an init linked in kernel space: the kernel refuses to load it and panics.
# text: 0xC0800000
# expect-exit: 1
# expect: panic: main: cannot start init (the first module)
        .text
        .globl _start
_start:
        j       _start
