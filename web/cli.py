"""``flask --app wsgi ...`` commands: index bootstrap, mailbox import, users.

They call ``shared/`` directly (no worker needed), so they work on a fresh
machine before anything else runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup

from shared.importer import import_mbox
from shared.index import bootstrap
from shared.users import UserError, create_user, find_user
from web.extensions import services

index_cli = AppGroup("index", help="Manage the email index.")
mail_cli = AppGroup("mail", help="Import mail.")
users_cli = AppGroup("users", help="Manage users.")


@index_cli.command("bootstrap")
def index_bootstrap() -> None:
    """Create the index template, first index and write alias (idempotent)."""
    svc = services()
    for action in bootstrap(svc.elasticsearch, svc.settings):
        click.echo(action)


@mail_cli.command("import-mbox")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--user", "email", required=True, help="Email of the user who owns the mailbox.")
def mail_import_mbox(path: Path, email: str) -> None:
    """Import an mbox file (e.g. Google Takeout) for a user; safe to repeat."""
    svc = services()
    user = find_user(svc.redis, svc.settings, email)
    if user is None:
        raise click.UsageError(f"no user {email}; create one with 'users create {email}'")
    stats = import_mbox(svc.elasticsearch, svc.settings, user.id, path, refresh=True)
    click.echo(json.dumps(stats.as_dict()))
    if stats.failed:
        sys.exit(1)


@users_cli.command("create")
@click.argument("email")
def users_create(email: str) -> None:
    """Create a user; the password is read from standard input."""
    password = (
        sys.stdin.readline().rstrip("\n")
        if not sys.stdin.isatty()
        else click.prompt("Password", hide_input=True, confirmation_prompt=True)
    )
    svc = services()
    try:
        user = create_user(svc.redis, svc.settings, email, password)
    except UserError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(f"created {user.email} ({user.id})")


def init_cli(app: Flask) -> None:
    for group in (index_cli, mail_cli, users_cli):
        app.cli.add_command(group)
