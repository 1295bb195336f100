"""The one-time sign-in link of `bursarctl console-link`: opened and continued, it signs in; a
second time, or a code it never made, it is gone (410 link_invalid)."""

from __future__ import annotations

import re

import bursar


def console_link(user) -> str:
    out = bursar.ctl("console-link", token=user.token, as_json=False)
    m = re.search(re.escape(bursar.SERVER) + r"/console/link/[^\s\"'<>]+", out)
    assert m, f"no {bursar.SERVER}/console/link/<code> in bursarctl console-link's output: {out!r}"
    return m.group(0)


def test_one_time_link(console, seed):
    ben = seed.users["member"]
    link = console_link(ben)
    path = link[len(bursar.SERVER):]
    console.sign_out_locally()
    console.open(path)
    assert (console.status, console.page) == (200, "link"), console.describe()
    console.submit(console.one("form#link button[type=submit]"))
    assert console.page == "overview", console.describe()
    assert ben.email in console.one("[data-testid=whoami]").text
    assert console.session_cookie() is not None

    console.sign_out_locally()
    console.open(path)
    assert (console.status, console.page, console.error) == (410, "error", "link_invalid"), console.describe()
    assert console.session_cookie() is None


def test_unknown_link(console):
    console.open("/console/link/not-a-code-bursar-ever-made")
    assert (console.status, console.page, console.error) == (410, "error", "link_invalid"), console.describe()
