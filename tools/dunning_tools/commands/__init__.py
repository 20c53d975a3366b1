"""Subcommands of `dunning`, one module each: `register(subcommands)` adds its parser and sets
`handler` (a function of the parsed arguments returning the exit code, its own parser bound with
`functools.partial`) as that parser's default; `dunning_tools.cli` lists the
modules in `COMMAND_MODULES` and dispatches to `args.handler`.
"""
