"""The Flask front: JSON API, health, metrics. ``create_app`` is the only entry."""

from __future__ import annotations

from flask import Flask

from shared.core import local_servers
from shared.core.logs import configure_logging
from shared.core.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> Flask:
    """Build the web app from ``settings`` (default: the environment's)."""
    # No server URL configured (a CLI command beside make run): use the servers it recorded.
    settings, server_notes = local_servers.discover(settings or get_settings())
    settings = settings.with_secret_key()
    # No default /static route: web.client serves the page's files (with no-cache).
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.config["MAILCHAT_SERVER_NOTES"] = server_notes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    configure_logging(settings)

    from web import cli, client, errors, extensions, metrics, ratelimits, request_log
    from web.api import (
        accounts,
        auth,
        chat,
        conversations,
        emails,
        health,
        me,
        openapi,
        register,
        uploads,
    )
    from web.api import mail as mail_upload
    from web.realtime import sse, ws

    request_log.init_request_log(app)
    extensions.init_services(app, settings)
    errors.register_error_handlers(app)
    auth.init_auth(app)
    ratelimits.init_rate_limits(app, settings)  # after the bearer check: keys on g.user
    app.register_blueprint(register.bp)
    app.register_blueprint(uploads.bp)
    app.register_blueprint(chat.bp)
    app.register_blueprint(sse.bp)
    app.register_blueprint(conversations.bp)
    ws.init_websocket(app, settings)
    app.register_blueprint(health.bp)
    app.register_blueprint(me.bp)
    app.register_blueprint(accounts.bp)
    app.register_blueprint(mail_upload.bp)
    app.register_blueprint(emails.bp)
    app.register_blueprint(client.bp)
    app.register_blueprint(openapi.bp)
    cli.init_cli(app)
    metrics.init_metrics(app)
    return app
