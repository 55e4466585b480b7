"""``flask --app wsgi ...`` commands: index bootstrap and lifecycle, mailbox import, users.

They call ``shared/`` directly (no worker needed), so they work on a fresh
machine before anything else runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup, ScriptInfo

from shared.identity.users import UserError, create_user, find_user
from shared.index import lifecycle
from shared.index.lifecycle.policy import LifecycleError
from shared.index.template import bootstrap
from shared.index.writer import import_messages, mbox_messages
from shared.privacy.delete_data import SyncStillRunning, delete_user_data
from shared.sync.accounts import owner_addresses
from web.cli_progress import ImportProgress
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


def _lifecycle_output(result: dict[str, object], as_json: bool, lines: list[str]) -> None:
    click.echo(json.dumps(result, indent=2) if as_json else "\n".join(lines))


@index_cli.command("rollover")
@click.option("--dry-run", is_flag=True, help="Print conditions, current values and the plan.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def index_rollover(dry_run: bool, as_json: bool) -> None:
    """Roll the write alias over if its write index is due (what beat runs hourly)."""
    svc = services()
    try:
        result = lifecycle.rollover(
            svc.elasticsearch, svc.redis, svc.settings, dry_run=dry_run, owner="cli"
        )
    except LifecycleError as exc:
        raise click.ClickException(str(exc)) from exc
    lines = [f"alias {result.alias}, write index {result.write_index}"]
    for name, limit in result.conditions.items():
        current = result.current.get("age" if name == "max_age" else "largest_primary_shard")
        state = "met" if result.met.get(name) else "not met"
        lines.append(f"  {name} {limit}: current {current} -> {state}")
    if result.current:
        lines.append(f"  documents: {result.current.get('docs')}")
    lines.append(("dry run: " if dry_run else "") + f"{result.outcome}: {result.message}")
    _lifecycle_output(result.as_dict(), as_json, lines)


@index_cli.command("retention")
@click.option("--dry-run", is_flag=True, help="Print which indices would be deleted and why.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def index_retention(dry_run: bool, as_json: bool) -> None:
    """Delete indices rolled over more than MAILCHAT_RETENTION_DAYS ago (beat runs it daily)."""
    svc = services()
    try:
        result = lifecycle.retention(
            svc.elasticsearch, svc.redis, svc.settings, dry_run=dry_run, owner="cli"
        )
    except LifecycleError as exc:
        raise click.ClickException(str(exc)) from exc
    lines = [f"alias {result.alias}, retention {result.retention_days} days"]
    verb = "would delete" if dry_run else "deleted"
    for entry in result.deleted:
        lines.append(f"  {verb} {entry['name']}: rolled over {entry['rolled_over_at']}")
    for entry in result.kept:
        lines.append(f"  keep {entry['name']} until {entry['delete_after']}")
    lines.append(("dry run: " if dry_run else "") + f"{result.outcome}: {result.message}")
    _lifecycle_output(result.as_dict(), as_json, lines)


@index_cli.command("status")
def index_status() -> None:
    """Print the alias, its write index and every index behind it, as JSON."""
    svc = services()
    try:
        found = lifecycle.status(svc.elasticsearch, svc.redis, svc.settings)
    except LifecycleError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(found, indent=2))


@index_cli.command("migrate")
@click.option("--dry-run", is_flag=True, help="Print which indices would move.")
def index_migrate(dry_run: bool) -> None:
    """Reindex every index behind the alias into the current template version."""
    svc = services()
    try:
        result = lifecycle.migrate(
            svc.elasticsearch,
            svc.redis,
            svc.settings,
            dry_run=dry_run,
            owner="cli",
            on_step=lambda step, index: click.echo(f"{step} {index}", err=True),
            owner_addresses=lambda user_id: owner_addresses(svc.redis, svc.settings, user_id),
        )
    except LifecycleError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(result.as_dict(), indent=2))


@mail_cli.command("import-mbox")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--user", "email", required=True, help="Email of the user who owns the mailbox.")
def mail_import_mbox(path: Path, email: str) -> None:
    """Import an mbox file (e.g. Google Takeout) for a user; safe to repeat."""
    svc = services()
    user = find_user(svc.redis, svc.settings, email)
    if user is None:
        raise click.UsageError(f"no user {email}; create one with 'users create {email}'")
    progress = ImportProgress(path)
    stats = import_messages(
        svc.elasticsearch,
        svc.settings,
        user.id,
        mbox_messages(path),
        source="mbox",
        refresh=True,
        on_batch_indexed=progress,
        owner_addresses=owner_addresses(svc.redis, svc.settings, user.id),
    )
    progress.close(stats)
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


@users_cli.command("delete-data")
@click.argument("email")
@click.option("--delete-user", is_flag=True, help="Also delete the login itself.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def users_delete_data(email: str, delete_user: bool, yes: bool) -> None:
    """Delete a user's mail, conversations, logs, accounts and tokens; prints the counts."""
    svc = services()
    user = find_user(svc.redis, svc.settings, email)
    if user is None:
        raise click.UsageError(f"no user {email}")
    what = "all data and the login" if delete_user else "all data (the login stays)"
    if not yes:
        click.confirm(f"Delete {what} of {user.email} ({user.id})?", abort=True)
    try:
        report = delete_user_data(
            svc.elasticsearch, svc.redis, svc.settings, user.id, delete_user=delete_user
        )
    except SyncStillRunning as exc:  # the sync stops at its next batch; then this finishes
        raise click.ClickException(f"{exc}; run the same command again in a minute") from exc
    click.echo(json.dumps(report.as_dict()))


SERVER_NOTES = "MAILCHAT_SERVER_NOTES"


def _say_which_servers() -> None:
    """Before any command: which servers it uses when make run's were found (on stderr)."""
    info = click.get_current_context().find_object(ScriptInfo)
    app = info.load_app() if info is not None else None
    for note in app.config.get(SERVER_NOTES, []) if app is not None else []:
        click.echo(note, err=True)


def init_cli(app: Flask) -> None:
    for group in (index_cli, mail_cli, users_cli):
        group.callback = _say_which_servers
        app.cli.add_command(group)
