"""A key limit above a cap of the project or of the member's grant is refused by name: in the
browser before submitting ([data-testid=cap-error]), and by the server when the page's script is
bypassed (422, [data-testid=form-error][data-cap=...], the values kept). No key is created."""

from __future__ import annotations

import pytest

import bursar
from browser import SUBMIT

# (who, field, value typed, the cap it breaks, that cap's value)
CASES = [
    ("admin", "tpm", "150000", "project.tpm", 120000),  # Cleo has no grant: Production's 120k
    ("member", "tpm", "50000", "grant.tpm", bursar.MEMBER_GRANT["tpm"]),  # within the project, over Ben's grant
    ("member", "max_spend", "500", "grant.max_key_spend", bursar.MEMBER_GRANT["max_key_spend"]),
]
IDS = [f"{c[0]}-{c[3]}" for c in CASES]


def key_ids(user) -> set:
    answer = bursar.ctl("key", "list", "--project", "Production", token=user.token)
    keys = answer.get("keys", answer) if isinstance(answer, dict) else answer
    return {k["id"] for k in keys}


def fill(console, field: str, value: str, name: str):
    form = console.one("form#new-key")
    for n, v in (("name", name), (field, value)):
        e = form.find_element("css selector", f"input[name={n}]")
        e.clear()
        e.send_keys(v)
    return form


@pytest.mark.parametrize("who,field,value,cap,limit", CASES, ids=IDS)
def test_refused_in_the_browser(who, field, value, cap, limit, console, urls, seed):
    user = seed.users[who]
    before = key_ids(user)
    console.sign_in(user)
    console.open(urls["key-new:Production"])
    assert (console.status, console.page) == (200, "key-new"), console.describe()
    inp = console.one(f"form#new-key input[name={field}]")
    assert inp.get_attribute("data-cap") == cap, (field, inp.get_attribute("data-cap"))
    form = fill(console, field, value, f"over-{cap}")
    console.driver.execute_script("window.__sameDocument = true")
    form.find_element("css selector", SUBMIT).click()
    error = console.wait_for("[data-testid=cap-error]")
    assert cap in error.text, f"cap-error {error.text!r} does not name {cap}"
    assert console.driver.execute_script("return window.__sameDocument === true"), \
        f"the form was submitted: {console.describe()}"
    assert key_ids(user) == before, "a key was created"


@pytest.mark.parametrize("who,field,value,cap,limit", CASES, ids=IDS)
def test_refused_by_the_server(who, field, value, cap, limit, console, urls, seed):
    user = seed.users[who]
    before = key_ids(user)
    console.sign_in(user)
    console.open(urls["key-new:Production"])
    name = f"server-{cap}"
    form = fill(console, field, value, name)
    console.submit_bypassing_scripts(form)
    assert (console.status, console.page) == (422, "key-new"), console.describe()
    errors = console.all(f"[data-testid=form-error][data-cap='{cap}']")
    assert errors, f"no [data-testid=form-error][data-cap={cap}]: " + \
        str([(e.get_attribute("data-cap"), e.text) for e in console.all("[data-testid=form-error]")])
    assert cap in errors[0].text, f"form-error {errors[0].text!r} does not name {cap}"
    kept = console.one("form#new-key")
    assert kept.find_element("css selector", "input[name=name]").get_attribute("value") == name
    assert kept.find_element("css selector", f"input[name={field}]").get_attribute("value").replace(",", "") == value
    assert key_ids(user) == before, "a key was created"
