"""`python -m kite`: the umbrella command."""

from kite.cli import main

main(prog_name="kite")
