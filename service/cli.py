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


@app.command()
def migrate(
    db: str = typer.Option(
        None, help="sqlite:///path.db or postgresql://… (default: the serve database)"
    ),
) -> None:
    """Create or upgrade the observability schema to the latest revision."""
    from detector.observability import migrate as migrations

    url = db or Settings().database_url
    shown = migrations.redact_url(url)
    try:
        before = migrations.current_revision(url)
        after = migrations.upgrade(url)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except Exception as exc:  # the driver's error: say what failed, not a traceback
        typer.echo(f"error: cannot migrate {shown}: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from exc
    if before == after:
        typer.echo(f"{shown} is up to date (revision {after})")
    else:
        typer.echo(f"migrated {shown} from revision {before or 'none'} to {after}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
