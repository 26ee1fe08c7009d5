"""`event-detector`: the command line."""

from __future__ import annotations

import typer
import uvicorn

from .app import create_app
from .settings import Settings

app = typer.Typer(no_args_is_help=True, help="Event detector for Hasura event triggers.")


@app.command()
def serve(
    db: str = typer.Option(None, help="sqlite:///path.db or postgresql://…"),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
    demo: bool = typer.Option(False, help="Fill the database with demo data first."),
) -> None:
    """Serve the GraphQL API and the web client."""
    overrides = {"database_url": db} if db else {}
    settings = Settings(**overrides, host=host, port=port)
    typer.echo(
        f"event-detector serving on http://{host}:{port}/ (database {settings.database_url})"
    )
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


def main() -> None:
    app()
