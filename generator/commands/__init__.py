"""The `optimgen` command line: one parser registry (cli.py) and a module per command.

Commands call the driver (generator.driver) and the public API (generator.api); nothing in the
compiler imports from here.
"""
