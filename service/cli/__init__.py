"""`event-detector`, the command line: `commands` parses and runs, `console` renders."""

from service.cli.commands import app, main

__all__ = ["app", "main"]
