"""Login sessions: rotating refresh tokens, reuse detection, absolute lifetime, re-checks."""

from __future__ import annotations

import dataclasses
import time

import pytest

from shared.core.clients import get_redis
from shared.identity.sessions import (
    RefreshError,
    end_session,
    end_sessions,
    rotate,
    start_session,
    still_valid,
)
from shared.identity.users import TokenError, issue_token, revoke_tokens, verify_token

pytestmark = pytest.mark.timeout(30)


def test_a_refresh_token_rotates_and_an_old_one_revokes_the_family(settings, make_user) -> None:
    r = get_redis(settings)
    user, _ = make_user("rotate")
    member, first = start_session(r, settings, user)
    access = issue_token(settings, member)
    assert verify_token(settings, access, r).session_id == member.session_id
    again, second = rotate(r, settings, first)
    assert again.session_id == member.session_id and second != first
    _, third = rotate(r, settings, second)
    # The first token again: copied. The whole family is revoked, the newest token too.
    with pytest.raises(RefreshError) as reused:
        rotate(r, settings, first)
    assert reused.value.code == "refresh_token_reused"
    with pytest.raises(RefreshError) as ended:
        rotate(r, settings, third)
    assert ended.value.code == "session_ended"
    with pytest.raises(TokenError):
        verify_token(settings, access, r)


def test_forged_and_malformed_refresh_tokens_are_refused(settings, make_user) -> None:
    r = get_redis(settings)
    user, _ = make_user("forged")
    _, token = start_session(r, settings, user)
    uid, sid, gen, mac = token.split(".")
    for bad in ("", "x", f"{uid}.{sid}.{gen}.{'0' * len(mac)}", f"{uid}.{sid}.1.{mac}", "a" * 400):
        with pytest.raises(RefreshError) as refused:
            rotate(r, settings, bad)
        assert refused.value.code == "invalid_refresh_token"
    rotate(r, settings, token)  # the forgeries did not spend the real one


def test_a_session_has_an_absolute_lifetime(settings, make_user) -> None:
    r = get_redis(settings)
    short = dataclasses.replace(settings, session_max_seconds=60)
    user, _ = make_user("lifetime")
    now = time.time()
    member, token = start_session(r, short, user, now=now)
    assert member.expires_at == int(now) + 60
    # An access token never outlives its session, whatever its own TTL.
    claims_user = verify_token(short, issue_token(short, member, now=now), r)
    assert claims_user.expires_at == member.expires_at
    member, token = rotate(r, short, token, now=now + 30)
    assert member.expires_at == int(now) + 60  # refreshing does not extend it
    with pytest.raises(RefreshError) as over:
        rotate(r, short, token, now=now + 61)
    assert over.value.code == "session_ended"


def test_revoking_tokens_ends_refresh_too(settings, make_user) -> None:
    r = get_redis(settings)
    user, _ = make_user("revoked")
    _, token = start_session(r, settings, user)
    revoke_tokens(r, settings, user.id)  # what delete-my-data does
    with pytest.raises(RefreshError):
        rotate(r, settings, token)


def test_end_sessions_keeps_only_the_one_asked(settings, make_user) -> None:
    r = get_redis(settings)
    user, _ = make_user("others")
    kept, _ = start_session(r, settings, user)
    others = [start_session(r, settings, user)[0] for _ in range(3)]
    assert end_sessions(r, settings, user.id, keep=kept.session_id) == 3
    assert still_valid(r, settings, kept) is None
    assert all(still_valid(r, settings, o) == "revoked" for o in others)
    assert end_session(r, settings, user.id, kept.session_id)
    assert still_valid(r, settings, kept) == "revoked"


def test_still_valid_notices_expiry(settings, make_user) -> None:
    r = get_redis(settings)
    user, _ = make_user("expiry")
    member, _ = start_session(r, settings, user)
    soon = dataclasses.replace(member, expires_at=int(time.time()) + 100)
    assert still_valid(r, settings, soon) is None
    assert still_valid(r, settings, soon, now=time.time() + 101) == "expired"
