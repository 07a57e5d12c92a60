"""The `doctoctoc` command: `main` is the console entry point, `cli` the click group."""

from bot.cli.main import cli, main

__all__ = ["cli", "main"]
