"""Token lifecycle end to end: `bursarctl token show|rotate|revoke` against the real bursard, and
a real browser's console session ending when its token is revoked or its user leaves their last
organization. Uses people invited here, never the seed's (whose tokens the other tests use)."""

from __future__ import annotations

import types

import pytest

from bursar import CtlError, ctl


def _invite(seed, email: str):
    inv = ctl("member", "invite", email, "--name", email.split("@")[0], token=seed.users["owner"].token)
    joined = ctl("invitation", "accept", inv["accept_token"])
    return types.SimpleNamespace(email=email, token=joined["token"], id=joined["member"]["user_id"])


def test_bursarctl_token_show_rotate_revoke(seed):
    person = _invite(seed, "tina@fastrouter.ai")
    shown = ctl("token", "show", token=person.token)
    assert shown["kind"] == "user" and "created_ms" in shown and "expires_ms" not in shown, shown
    rotated = ctl("token", "rotate", "--expires-in-days", "7", token=person.token)
    assert rotated["token"].startswith("pat-br-") and rotated["expires_ms"] > 0, rotated
    with pytest.raises(CtlError, match="not valid"):
        ctl("me", token=person.token)
    assert ctl("token", "show", token=rotated["token"])["expires_ms"] == rotated["expires_ms"]
    with pytest.raises(CtlError, match="expires-in-days must be 1…3650"):
        ctl("token", "rotate", "--expires-in-days", "0", token=rotated["token"])
    assert ctl("token", "revoke", token=rotated["token"], as_json=False).strip() == "Token revoked."
    with pytest.raises(CtlError):
        ctl("me", token=rotated["token"])


def test_a_console_session_ends_when_its_token_is_revoked(console, seed):
    person = _invite(seed, "rhea@fastrouter.ai")
    console.sign_in(person)
    overview = console.driver.current_url
    ctl("token", "revoke", token=person.token, as_json=False)
    console.driver.get(overview)
    console._loaded()
    assert console.page == "sign-in", console.describe()


def test_a_console_session_ends_when_its_user_leaves_their_last_organization(console, seed):
    person = _invite(seed, "omar@fastrouter.ai")
    console.sign_in(person)
    overview = console.driver.current_url
    ctl("member", "remove", person.email, token=seed.users["owner"].token, as_json=False)
    console.driver.get(overview)
    console._loaded()
    assert console.page == "sign-in", console.describe()
    with pytest.raises(CtlError):
        ctl("me", token=person.token)
