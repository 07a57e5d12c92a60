"""`python -m bot.cli` runs the `doctoctoc` command."""

from bot.cli.main import main

main()
