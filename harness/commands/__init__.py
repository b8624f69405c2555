"""Subcommands of the command line: one module each, each exposing one ``COMMAND`` value
(:class:`~harness.commands.base.Command`); :mod:`harness.commands.registry` lists them.

This package's ``__init__`` imports nothing, so a library module can use the shared helpers
in ``_common`` without importing every command.
"""
