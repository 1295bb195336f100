"""Sessions, cookies and CSRF, and what a Member cannot reach by typing a URL or posting a form.
The browser for what a person does; raw HTTP (bursar.request, no redirects followed) for status
codes, headers, and POSTs a browser would never send."""

from __future__ import annotations

import time
import urllib.parse

import pytest

import bursar
from browser import SESSION_COOKIE, SUBMIT
from bursar import cookie_attributes, hidden_inputs, request

DEFAULT_TTL = 28800


def cookies_from(resp: bursar.Response) -> dict:
    out = {}
    for sc in resp.set_cookies():
        name, value, _ = cookie_attributes(sc)
        out[name] = value
    return out


def cookie_header(cookies: dict) -> str:
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def http_sign_in(token: str, server: str = bursar.SERVER, csrf: bool = True):
    """The sign-in form posted without a browser: (the POST's response, the cookies it holds after)."""
    page = request("GET", "/console/sign-in", server=server)
    assert (page.status, page.page) == (200, "sign-in"), (page.status, page.page)
    jar = cookies_from(page)
    form = {"token": token}
    if csrf:
        hidden = hidden_inputs(page.body, "sign-in")
        assert "_csrf" in hidden, "form#sign-in has no hidden _csrf"
        form["_csrf"] = hidden["_csrf"]
    resp = request("POST", "/console/sign-in", server=server, form=form, cookie=cookie_header(jar) or None)
    jar.update(cookies_from(resp))
    return resp, jar


def cookie_for(value: str) -> str:
    return f"{SESSION_COOKIE}={value}"


def assert_to_sign_in(resp: bursar.Response, path: str):
    assert resp.status == 303, (resp.status, resp.page, path)
    loc = urllib.parse.urlsplit(resp.header("Location") or "")
    assert loc.path == "/console/sign-in", resp.header("Location")
    assert urllib.parse.parse_qs(loc.query).get("next") == [path], resp.header("Location")


def replace(pairs: list, **values) -> list:
    out = [(k, v) for k, v in pairs if k not in values]
    return out + [(k, v) for k, v in values.items() if v is not None]


# -- sign-in and cookies ---------------------------------------------------------------------------

def test_no_session_redirects_to_sign_in(console, urls):
    for page in ("overview", "project:Production", "key-new:Production", "organization", "audit"):
        assert_to_sign_in(request("GET", urls[page]), urls[page])
    console.sign_out_locally()
    console.open(urls["project:Production"])
    assert console.page == "sign-in" and console.path.startswith("/console/sign-in"), console.describe()


def test_sign_in_redirects_to_the_organization(console, seed):
    resp, _ = http_sign_in(seed.users["admin"].token)
    assert resp.status == 303, (resp.status, resp.page, resp.body[:300])
    assert urllib.parse.urlsplit(resp.header("Location")).path == console.org_path, resp.header("Location")


def test_session_cookie_flags(console, seed):
    resp, jar = http_sign_in(seed.users["admin"].token)
    assert resp.status == 303, (resp.status, resp.page, resp.body[:300])
    session = [sc for sc in resp.set_cookies() if sc.startswith(SESSION_COOKIE + "=")]
    assert len(session) == 1, resp.set_cookies()
    name, value, attrs = cookie_attributes(session[0])
    assert value, session[0]
    assert "httponly" in attrs, f"not HttpOnly: {session[0]}"
    assert attrs.get("samesite", "").lower() == "strict", f"not SameSite=Strict: {session[0]}"
    assert attrs.get("path") == "/console", session[0]
    assert attrs.get("max-age") == str(DEFAULT_TTL), session[0]
    # The session works, and the browser sees the same flags.
    ok = request("GET", console.org_path, cookie=cookie_for(value))
    assert (ok.status, ok.page) == (200, "overview"), (ok.status, ok.page)
    console.sign_in(seed.users["admin"])
    c = console.session_cookie()
    assert c and c["httpOnly"] is True and c.get("sameSite") == "Strict", c
    assert not console.driver.execute_script("return document.cookie.includes(arguments[0])", SESSION_COOKIE)


def test_session_cookie_secure_over_tls(seed, tls_server):
    resp, jar = http_sign_in(seed.users["admin"].token, server=tls_server)
    assert resp.status == 303, (resp.status, resp.page)
    session = [sc for sc in resp.set_cookies() if sc.startswith(SESSION_COOKIE + "=")]
    assert len(session) == 1, resp.set_cookies()
    _, _, attrs = cookie_attributes(session[0])
    assert "secure" in attrs and "httponly" in attrs, f"over TLS, not Secure and HttpOnly: {session[0]}"


@pytest.mark.parametrize("which", ["unknown token", "operator token"])
def test_sign_in_refused(which, console, seed):
    token = "pat-br-" + "x" * 43 if which == "unknown token" else seed.operator_token
    console.sign_out_locally()
    console.open("/console/sign-in")
    console.one("form#sign-in input[name=token]").send_keys(token)
    console.submit(console.one("form#sign-in button[type=submit]"))
    assert (console.status, console.page) == (401, "sign-in"), console.describe()
    error = console.wait_for("[data-testid=form-error]").text
    assert "token" in error.lower(), f"the form-error does not name the token: {error!r}"
    assert console.session_cookie() is None
    resp, jar = http_sign_in(token)
    assert resp.status == 401 and SESSION_COOKIE not in jar, (resp.status, jar)


def test_sign_in_without_csrf(seed):
    resp, jar = http_sign_in(seed.users["admin"].token, csrf=False)
    assert (resp.status, resp.page, resp.error) == (403, "error", "csrf"), (resp.status, resp.page, resp.error)
    assert SESSION_COOKIE not in jar, jar


def test_expired_session(console, seed, short_session_server):
    """Sessions live in Redis: a bursard with --console-session-ttl 2 makes 2-second sessions that
    the main bursard honours, then refuses once they have expired."""
    short = short_session_server
    resp, jar = http_sign_in(seed.users["admin"].token, server=short)
    assert resp.status == 303, resp.status
    _, _, attrs = cookie_attributes(next(sc for sc in resp.set_cookies() if sc.startswith(SESSION_COOKIE + "=")))
    assert attrs.get("max-age") == "2", attrs
    console.sign_in(seed.users["admin"], server=short)
    value = console.session_cookie()["value"]
    shared = request("GET", console.org_path, cookie=cookie_for(value))
    assert (shared.status, shared.page) == (200, "overview"), "a session made by the other bursard is unknown here"
    time.sleep(3)  # the TTL itself is what is tested: nothing to wait for but the clock
    for server in (short, bursar.SERVER):
        for v in (value, jar[SESSION_COOKIE]):
            assert_to_sign_in(request("GET", console.org_path, server=server, cookie=cookie_for(v)),
                              console.org_path)
    # In the browser, with the cookie put back as if the browser had kept it: the sign-in page.
    console.driver.add_cookie({"name": SESSION_COOKIE, "value": value, "path": "/console"})
    console.open(console.org_path, server=short)
    assert console.page == "sign-in" and console.path.startswith("/console/sign-in?"), console.describe()
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(console.path).query).get("next") == [console.org_path]


def test_sign_out(console, seed):
    console.sign_in(seed.users["admin"])
    value = console.session_cookie()["value"]
    assert request("GET", console.org_path, cookie=cookie_for(value)).status == 200
    console.submit(console.one(f"form#sign-out {SUBMIT}"))
    console.open(console.org_path)
    assert console.page == "sign-in", f"still signed in after signing out: {console.describe()}"
    assert_to_sign_in(request("GET", console.org_path, cookie=cookie_for(value)), console.org_path)


# -- CSRF -------------------------------------------------------------------------------------------

def test_revoke_needs_csrf(console, urls, seed):
    ben = seed.users["member"]
    made = bursar.ctl("key", "create", "--project", "Production", "--name", "ben-csrf", token=ben.token)
    key_id, secret = made["key"]["id"], made["secret"]
    console.sign_in(ben)
    console.open(urls["project:Production"])
    pairs, action = console.form_pairs(f"form[data-revoke='{key_id}']")
    assert action == f"{console.org_path}/keys/{key_id}/revoke", action
    good = dict(pairs).get("_csrf")
    assert good, f"form[data-revoke={key_id}] posts no _csrf: {pairs}"
    cookie = console.session_header()
    # The page's token with its first character changed: never the token itself (a token that
    # happens to start with "x" must not be "changed" to itself).
    wrong = ("y" if good[0] == "x" else "x") + good[1:]
    assert wrong != good
    for label, form in (("no _csrf", replace(pairs, _csrf=None)), ("a wrong _csrf", replace(pairs, _csrf=wrong))):
        r = request("POST", action, cookie=cookie, form=form)
        assert (r.status, r.page, r.error) == (403, "error", "csrf"), (label, r.status, r.page, r.error)
        assert bursar.check(secret, "gpt-5.5")["allowed"], f"revoked by a POST with {label}"
    # The same POST with the page's token does revoke: the refusals above were for the token alone.
    r = request("POST", action, cookie=cookie, form=pairs)
    assert r.status == 303, (r.status, r.page, r.error)
    assert bursar.check(secret, "gpt-5.5")["reason"] == "key_revoked"


def test_sign_out_needs_csrf(console, seed):
    console.sign_in(seed.users["admin"])
    cookie = console.session_header()
    r = request("POST", "/console/sign-out", cookie=cookie, form={})
    assert (r.status, r.page, r.error) == (403, "error", "csrf"), (r.status, r.page, r.error)
    ok = request("GET", console.org_path, cookie=cookie)
    assert (ok.status, ok.page) == (200, "overview"), "a sign-out without a CSRF token ended the session"


def test_invite_needs_csrf(console, urls, seed):
    console.sign_in(seed.users["owner"])
    console.open(urls["organization"])
    pairs, action = console.form_pairs("form#invite")
    pairs = replace(pairs, email="eve@fastrouter.ai", name="Eve", role="member")
    cookie = console.session_header()
    r = request("POST", action, cookie=cookie, form=replace(pairs, _csrf=None))
    assert (r.status, r.page, r.error) == (403, "error", "csrf"), (r.status, r.page, r.error)
    members = bursar.ctl("member", "list", token=seed.users["owner"].token)
    members = members.get("members", members) if isinstance(members, dict) else members
    assert "eve@fastrouter.ai" not in [m["email"] for m in members], "invited without a CSRF token"
    pending = bursar.ctl("invitation", "list", token=seed.users["owner"].token)["invitations"]
    assert "eve@fastrouter.ai" not in [i["email"] for i in pending], "invited without a CSRF token"


# -- what a Member cannot reach -------------------------------------------------------------------

@pytest.mark.parametrize("who,page,status,error", [
    ("member", "organization", 403, "forbidden"),
    ("member", "audit", 403, "forbidden"),
    ("member", "project:Sandbox", 404, "not_found"),
    ("member", "key-new:Sandbox", 404, "not_found"),
    ("outsider", "project:Production", 404, "not_found"),
    ("outsider", "key-new:Production", 404, "not_found"),
    ("admin", "organization", 403, "forbidden"),
])
def test_page_out_of_reach(who, page, status, error, console, urls, seed):
    console.sign_in(seed.users[who])
    console.open(urls[page])
    assert (console.status, console.page, console.error) == (status, "error", error), console.describe()


def project_settings(seed, name: str) -> tuple:
    p = bursar.ctl("project", "show", name, token=seed.users["owner"].token)
    p = p.get("project", p)
    return p.get("tpm"), p.get("rpm"), p.get("monthly_budget_nusd"), tuple(p.get("models") or ())


def test_member_cannot_post_admin_forms(console, urls, seed):
    """Forms as an Owner sees them, posted with a Member's own session and CSRF token: refused,
    nothing changed. The same forms posted by the Owner do work (so the refusals are the role's)."""
    owner, ben, dan = seed.users["owner"], seed.users["member"], seed.users["outsider"]
    console.sign_in(owner)
    forms = {}
    for name in ("Production", "Sandbox"):
        console.open(urls[f"project:{name}"])
        forms[f"settings:{name}"] = console.form_pairs("form[data-action=edit_project_settings]")
    console.open(urls["project:Production"])
    # Filled in for Dan: his e-mail in the e-mail field, or his option where the form lists people.
    console.driver.execute_script("""
        const [f, email, id] = arguments;
        for (const e of f.querySelectorAll('input[type=email], input[name=email]')) e.value = email;
        for (const s of f.querySelectorAll('select'))
          for (const o of s.options) if (o.value === email || o.value === id || o.text.includes(email)) s.value = o.value;
        """, console.one("form[data-action=add_project_members]"), dan.email, str(dan.id))
    forms["add-member"] = console.form_pairs("form[data-action=add_project_members]")
    cleo = seed.users["admin"]
    forms["role"] = console.form_pairs(
        f"table[data-action=view_project_members] tr[data-member-id='{cleo.id}'] form[data-action=edit_member_roles]")
    prod_api = next(k for k in seed.keys if k.name == "prod-api")  # Cleo's
    forms["revoke"] = console.form_pairs(f"form[data-revoke='{prod_api.id}']")
    owner_cookie = console.session_header()

    before = {n: project_settings(seed, n) for n in ("Production", "Sandbox")}
    members_before = bursar.ctl("project", "member", "list", "Production", token=owner.token)

    def as_user(user) -> tuple:
        console.sign_in(user)
        return console.session_header(), console.csrf()

    ben_cookie, ben_csrf = as_user(ben)
    refusals = []
    for key in ("settings:Production", "settings:Sandbox"):
        pairs, action = forms[key]
        r = request("POST", action, cookie=ben_cookie, form=replace(pairs, _csrf=ben_csrf, tpm="1", rpm="1"))
        if r.status not in (403, 404) or r.page != "error":
            refusals.append(f"Ben's POST {action} ({key}): {r.status} {r.page} {r.error}")
    for key, what, values in (("add-member", "add Dan to Production", {}),
                              ("role", "make Cleo a Project Member", {"role": "member"}),
                              ("revoke", "revoke Cleo's prod-api", {})):
        pairs, action = forms[key]
        r = request("POST", action, cookie=ben_cookie, form=replace(pairs, _csrf=ben_csrf, **values))
        if r.status not in (403, 404) or r.page != "error":
            refusals.append(f"Ben's POST {action} ({what}): {r.status} {r.page} {r.error}")
    assert not refusals, "\n".join(refusals)
    assert {n: project_settings(seed, n) for n in before} == before, "a Member changed a project's settings"
    assert bursar.ctl("project", "member", "list", "Production", token=owner.token) == members_before
    assert bursar.check(prod_api.secret, "gpt-5.5")["allowed"], "a Member revoked someone else's key"

    # Dan (no project) posting Production's new-key form as Ben sees it: refused, no key of his.
    console.open(urls["key-new:Production"])
    new_key, new_key_action = console.form_pairs("form#new-key")
    dan_cookie, dan_csrf = as_user(dan)
    r = request("POST", new_key_action, cookie=dan_cookie,
                form=replace(new_key, _csrf=dan_csrf, name="dan-sneaky"))
    assert r.status in (403, 404) and r.page == "error", (r.status, r.page, r.error)
    all_keys = bursar.ctl("key", "list", token=owner.token)
    all_keys = all_keys.get("keys", all_keys) if isinstance(all_keys, dict) else all_keys
    assert not [k for k in all_keys if k["user_id"] == dan.id], "Dan has a key"

    # Positive controls: the same forms posted by the Owner do change things.
    pairs, action = forms["settings:Production"]
    r = request("POST", action, cookie=owner_cookie, form=replace(pairs, tpm="110000"))
    assert r.status == 303, (r.status, r.page, r.error)
    assert project_settings(seed, "Production")[0] == 110000
    r = request("POST", action, cookie=owner_cookie, form=pairs)  # put it back
    assert r.status == 303 and project_settings(seed, "Production") == before["Production"]
    pairs, action = forms["add-member"]
    r = request("POST", action, cookie=owner_cookie, form=pairs)
    assert r.status == 303, (r.status, r.page, r.error)
    listed = bursar.ctl("project", "member", "list", "Production", token=owner.token)
    listed = listed.get("members", listed) if isinstance(listed, dict) else listed
    assert dan.email in [m["email"] for m in listed], "the Owner's add-member form did not add Dan"
    bursar.ctl("project", "member", "remove", "Production", dan.email, token=owner.token, as_json=False)
