"""The ``conveyor`` Typer application, assembled from the command modules.

The order of registration is the order ``conveyor --help`` lists the commands in.
"""

from __future__ import annotations

import typer

from conveyor.cli.bulk import publish_many
from conveyor.cli.dlq import dlq_app
from conveyor.cli.endpoints import endpoint_app
from conveyor.cli.events import event, lambdas, publish
from conveyor.cli.node import health, migrate, openapi, serve
from conveyor.cli.releases import release_app
from conveyor.cli.schemas import schema_app
from conveyor.cli.subscriptions import sub_app
from conveyor.cli.topics import topic_app
from conveyor.cli.worker import worker

__all__ = ["app", "main"]

app = typer.Typer(
    name="conveyor",
    help="Conveyor: durable events and tasks pushed to your Python lambdas.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(topic_app, name="topic")
app.add_typer(sub_app, name="subscription")
app.add_typer(dlq_app, name="dlq")
app.add_typer(endpoint_app, name="endpoint")
app.add_typer(schema_app, name="schema")
app.add_typer(release_app, name="release")
app.command("publish-many")(publish_many)
for command in (serve, health, migrate, worker, publish, event, lambdas, openapi):
    app.command()(command)


def main() -> None:
    """The console script's entry point."""
    app()
