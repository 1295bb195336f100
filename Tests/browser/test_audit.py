"""The audit log as data, end to end: an entry whose target holds U+202E and a newline is shown
escaped by the API, by `bursarctl audit` (table, JSON, CSV export) and on the console's audit
page in a real browser; `bursarctl audit --all` pages through the whole log."""

from __future__ import annotations

import csv
import io
import json
import urllib.error
import urllib.request

from bursar import SERVER, ctl

NAME = "invoice\u202efdp.exe\nforged line"
SHOWN = "name:invoice\\u{202E}fdp.exe\\nforged line"


def _forge(seed) -> None:
    """The Owner tries to create a project with that name: refused (a newline is a control
    character), and the attempt is recorded as given."""
    body = json.dumps({"name": NAME}).encode()
    org = seed.org_id
    req = urllib.request.Request(f"{SERVER}/v1/orgs/{org}/projects", data=body, method="POST",
                                 headers={"Authorization": f"Bearer {seed.users['owner'].token}",
                                          "Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=15)
        raise AssertionError("a name with a newline was accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 400, e.read()


def test_bursarctl_shows_audit_text_escaped_and_exports_every_page(seed):
    _forge(seed)
    owner = seed.users["owner"].token
    table = ctl("audit", "--limit", "5", token=owner, as_json=False)
    assert SHOWN in table and "\u202e" not in table, table
    page = ctl("audit", "--limit", "5", token=owner)
    assert page["entries"][0]["target"] == SHOWN
    # The whole log, page by page (5 at a time), as JSON and as CSV: the same entries.
    everything = ctl("audit", "--all", "--limit", "5", token=owner)["entries"]
    assert len(everything) > 5 and len({e["id"] for e in everything}) == len(everything)
    exported = ctl("audit", "--all", "--csv", "--limit", "7", token=owner, as_json=False)
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [r["id"] for r in rows] == [e["id"] for e in everything]
    assert any(r["target"] == SHOWN for r in rows)
    assert "\u202e" not in exported


def test_the_console_audit_page_shows_it_escaped(console, seed, urls):
    _forge(seed)
    console.sign_in(seed.users["owner"])
    console.open(urls["audit"])
    text = console.driver.find_element("css selector", "body").text
    assert SHOWN in text, text[:2000]
    assert "\u202e" not in console.driver.page_source
