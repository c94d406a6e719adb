"""`python -m asm`: the same command as `kite-as`."""

from asm.cli_as import main

main()
