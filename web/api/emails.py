"""``GET /api/emails/<id>``: open a cited email (subject, sender, date, body text).

The owner check is inside the search (``shared.index.emails``): somebody else's
email and a missing one are the same 404, so ids cannot be probed.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from shared.index.emails import is_email_id, open_email
from web.api.auth import current_user
from web.errors import ApiError
from web.extensions import services

bp = Blueprint("emails", __name__, url_prefix="/api/emails")


@bp.get("/<email_id>")
def get_email(email_id: str) -> Any:
    if not is_email_id(email_id):
        raise ApiError(400, "invalid_field", "That is not an email id.", field="id")
    svc = services()
    email = open_email(svc.elasticsearch, svc.settings, current_user().id, email_id)
    if email is None:
        raise ApiError(404, "email_not_found", "No such email.", field="id")
    return jsonify(email.as_dict())
