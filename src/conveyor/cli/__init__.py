"""``conveyor``: run a node or a worker, and drive a running platform from the shell.

Every command that talks to a running platform takes ``--server`` (or ``CONVEYOR_URL``) and
prints a table, or JSON with ``--json``. Errors print the server's message, field and rule
and exit with status 1.

Layout: :mod:`conveyor.cli.common` holds what every command shares (consoles, JSON printing,
sessions, durations); one module per command group (``node``, ``worker``, ``topics``,
``subscriptions``, ``events``, ``bulk``, ``dlq``, ``endpoints``, ``releases``, ``schemas``,
``connections``); :mod:`conveyor.cli.application` assembles them. ``conveyor.cli:main`` is
the console script.
"""

from __future__ import annotations

from conveyor.cli.application import app, main

__all__ = ["app", "main"]
