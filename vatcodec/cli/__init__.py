"""The `vatcodec` command line: a thin shell over the library, one module per command family.

`app.py` holds the Typer app and the conventions (see its docstring); each command module registers its
commands on it when imported here. Command modules import `vatcodec.cli.app`, never this package.
"""

import importlib

from vatcodec.cli.app import EXIT_INTERRUPTED, EXIT_USER_ERROR, app, command, console, fail, handle_errors

# Imported in the order `vatcodec --help` lists the commands; importing a module registers its commands.
for _module in ("codec_cmds", "view_cmd", "bench_cmd", "generate_cmd"):
    importlib.import_module(f"vatcodec.cli.{_module}")

__all__ = ["EXIT_INTERRUPTED", "EXIT_USER_ERROR", "app", "command", "console", "fail", "handle_errors"]
