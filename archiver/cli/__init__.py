"""Command line: parse, call the services, print (tables for people, --json for scripts).

Bad input ends with one line on stderr per problem and exit status 2; an unknown ID or URL with exit 1.
No traceback is ever shown for a user error.

One module per room (pipeline, reading, custody, exchange, web); importing this package registers every
command on the group in ``app``.
"""
from archiver.cli.app import cli, main
from archiver.cli import custody, exchange, pipeline, reading, web  # noqa: F401 - each registers its commands

__all__ = ["cli", "main"]
