"""doctoctoc-bot runtime: config, storage, collectors, pipeline, scheduler, CLI."""

__version__ = "0.1.0"
