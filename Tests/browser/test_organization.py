"""The Owner's pages: the organization page's sections (members, billing, every key of every
project, BYOK, virtual models, MCP servers, prompts), the last Owner protected, and the audit log
with its filter. Runs last: its positive control removes Dan from the organization."""

from __future__ import annotations

from selenium.webdriver.support.ui import Select

import bursar
from browser import SUBMIT
from bursar import request


def test_organization_sections(console, urls, seed):
    console.sign_in(seed.users["owner"])
    console.open(urls["organization"])
    assert (console.status, console.page) == (200, "organization"), console.describe()
    members = console.one("section[data-action=manage_organization_members]")
    listed = {e.get_attribute("data-member-id") for e in members.find_elements("css selector", "tr[data-member-id]")}
    assert {str(u.id) for u in seed.users.values()} <= listed, listed
    for name in ("email", "name", "role"):
        assert members.find_elements("css selector", f"form#invite [name={name}]"), f"form#invite has no {name}"
    billing = console.one("section[data-action=billing_and_credits]")
    assert billing.find_elements("css selector", "form#add-credits"), "no form#add-credits"
    every = console.one("section[data-action=manage_keys_across_all_projects]")
    shown = {e.get_attribute("data-key-id") for e in every.find_elements("css selector", "tr[data-key-id]")}
    missing = [k.name for k in seed.keys if str(k.id) not in shown]
    assert not missing, f"keys missing from every key of every project: {missing}"
    for action in ("external_keys_byok", "virtual_models", "mcp_servers", "prompt_management"):
        section = console.one(f"section[data-action={action}]")
        forms = [f for f in section.find_elements("css selector", "form") if f.get_attribute("method").lower() == "post"]
        assert forms, f"section[data-action={action}] has no create form"


def test_an_invitation_is_accepted_in_the_console_by_someone_new(console, urls, seed):
    """The Owner invites through the form: the page shows an acceptance token (not a person's
    token) and the organization page lists the pending invitation; the new person opens
    /console/invitation in a fresh browser session, pastes it, gets their own token once, and
    lands in the organization as a member, under the name the Owner gave."""
    console.sign_in(seed.users["owner"])
    console.open(urls["organization"])
    for name, value in (("email", "fay@fastrouter.ai"), ("name", "Fay Lin")):
        e = console.one(f"form#invite [name={name}]")
        e.clear()
        e.send_keys(value)
    console.submit(console.one(f"form#invite {SUBMIT}"))
    assert (console.status, console.page) == (201, "invited"), console.describe()
    invitation = console.one("#secret").text
    assert invitation.startswith("inv-br-"), invitation
    console.open(urls["organization"])
    pending = console.one("table#org-invitations")
    assert "fay@fastrouter.ai" in pending.text and invitation not in console.driver.page_source, pending.text

    console.sign_out_locally()
    console.open("/console/invitation")
    assert (console.status, console.page) == (200, "accept"), console.describe()
    console.one("form#accept [name=invitation]").send_keys(invitation)
    console.submit(console.one(f"form#accept {SUBMIT}"))
    assert (console.status, console.page) == (201, "accepted"), console.describe()
    token = console.one("#secret").text
    assert token.startswith("pat-br-"), token
    me = bursar.ctl("me", token=token)
    assert [o["id"] for o in me["organizations"]] == [seed.org_id], me
    members = bursar.ctl("member", "list", token=seed.users["owner"].token)
    members = members.get("members", members) if isinstance(members, dict) else members
    assert {"email": "fay@fastrouter.ai", "name": "Fay Lin"}.items() <= next(m for m in members if m["email"] == "fay@fastrouter.ai").items()


def test_prices_are_set_by_the_owner_and_shown_on_the_projects_that_use_them(console, urls, seed):
    """The Owner sets a price in the price table; a Project Member sees it on the project that
    may use the model, and not on one that may not; the table is Owners' only."""
    production, sandbox = seed.projects["Production"], seed.projects["Sandbox"]
    model = next(m for m in production["models"] if m not in sandbox["models"])
    assert model not in sandbox["models"], (production["models"], sandbox["models"])
    console.sign_in(seed.users["owner"])
    console.open(urls["organization"])
    for name, value in (("model", model), ("input", "2.50"), ("output", "10"), ("cached", "1.25")):
        e = console.one(f"form#price-form [name={name}]")
        e.clear()
        e.send_keys(value)
    console.submit(console.one(f"form#price-form {SUBMIT}"))
    row = console.one(f"section#prices tr[data-price-model='{model}']")
    assert "$2.5" in row.text and "$10." in row.text and "$1.25" in row.text, row.text
    listed = bursar.ctl("price", "list", token=seed.users["owner"].token)["prices"]
    assert {"model": model, "input_per_million_nusd": 2_500_000_000, "output_per_million_nusd": 10_000_000_000,
            "cached_input_per_million_nusd": 1_250_000_000} in listed, listed

    ben = seed.users["member"]
    console.sign_in(ben)
    console.open(urls["project:Production"])
    assert (console.status, console.page) == (200, "project"), console.describe()
    shown = console.one(f"table[data-testid=project-prices] tr[data-price-model='{model}']")
    assert "$2.5" in shown.text, shown.text
    assert not console.has("section#prices"), "a Member sees prices, but has no price table to edit"
    assert [p["model"] for p in bursar.ctl("price", "list", token=ben.token)["prices"]] == [model]
    # Cleo is a Project Admin of Production and a member of Sandbox, which may not use the model.
    console.sign_in(seed.users["admin"])
    console.open(urls["project:Sandbox"])
    assert not console.has(f"tr[data-price-model='{model}']"), "Sandbox may not use the model"
    # The Owner removes it again (the next tests see the seed as it was).
    console.sign_in(seed.users["owner"])
    console.open(urls["organization"])
    console.submit(console.one(f"section#prices tr[data-price-model='{model}'] {SUBMIT}"))
    assert not console.has(f"section#prices tr[data-price-model='{model}']")


def test_last_owner_cannot_be_removed_or_demoted(console, urls, seed):
    ada, dan = seed.users["owner"], seed.users["outsider"]
    console.sign_in(ada)
    console.open(urls["organization"])
    section = "section[data-action=manage_organization_members]"
    own_row = console.one(f"{section} tr[data-member-id='{ada.id}']")
    live = [b for b in own_row.find_elements("css selector", SUBMIT) if b.is_enabled()]
    assert not live, f"the last Owner's row has enabled buttons: {[b.text for b in live]}"

    # The server refuses too: Dan's row's forms, aimed at Ada.
    role_pairs, role_action = console.form_pairs(f"{section} tr[data-member-id='{dan.id}'] form:has(select[name=role])")
    remove_pairs, remove_action = console.form_pairs(
        f"{section} tr[data-member-id='{dan.id}'] form:not(:has(select[name=role]))")
    for action in (role_action, remove_action):
        assert f"/{dan.id}/" in action, f"cannot aim {action} at another member"
    cookie = console.session_header()
    demote = request("POST", role_action.replace(f"/{dan.id}/", f"/{ada.id}/"), cookie=cookie,
                     form=[(k, v) if k != "role" else ("role", "member") for k, v in role_pairs])
    remove = request("POST", remove_action.replace(f"/{dan.id}/", f"/{ada.id}/"), cookie=cookie, form=remove_pairs)
    assert demote.status != 303 and remove.status != 303, (demote.status, remove.status)
    orgs = bursar.ctl("me", token=ada.token)["organizations"]
    assert [o["role"] for o in orgs if o["id"] == seed.org_id] == ["owner"], f"Ada is no longer the Owner: {orgs}"
    # Positive control: the same remove form does remove Dan.
    r = request("POST", remove_action, cookie=cookie, form=remove_pairs)
    assert r.status == 303, (r.status, r.page, r.error)
    listed = bursar.ctl("member", "list", token=ada.token)
    listed = listed.get("members", listed) if isinstance(listed, dict) else listed
    assert dan.email not in [m["email"] for m in listed], "the remove form did not remove Dan"


def test_audit_filter(console, urls, seed):
    console.sign_in(seed.users["owner"])
    console.open(urls["audit"])
    assert (console.status, console.page) == (200, "audit"), console.describe()
    assert console.all("table#audit tr[data-audit-action]"), "an empty audit log after seeding"
    form = console.one("form#audit-filter")
    for name in ("actor", "target"):
        assert form.find_elements("css selector", f"input[name={name}]"), f"form#audit-filter has no {name}"
    action = form.find_element("css selector", "input[name=action]")
    action.clear()
    action.send_keys("project.create")
    console.submit(form.find_element("css selector", SUBMIT))
    assert console.page == "audit" and "action=project.create" in console.path, console.describe()
    rows = [r.get_attribute("data-audit-action") for r in console.all("table#audit tr[data-audit-action]")]
    assert len(rows) >= 2 and set(rows) == {"project.create"}, rows
    # Keys revoked in the console earlier in this run are in the log.
    console.open(urls["audit"] + "?action=key.revoke")
    rows = [r.get_attribute("data-audit-action") for r in console.all("table#audit tr[data-audit-action]")]
    assert rows and set(rows) == {"key.revoke"}, rows


def test_create_project_from_the_overview(console, urls, seed):
    ada = seed.users["owner"]
    console.sign_in(ada)
    holder = console.one("[data-action=create_project]")
    form = holder if holder.tag_name == "form" else holder.find_element("css selector", "form")
    summary = console.driver.execute_script(
        "const d = arguments[0].closest('details'); return d && !d.open ? d.querySelector('summary') : null", form)
    if summary is not None:  # a folded "New project": open it, as a person would
        summary.click()
    for name, value in (("name", "Staging"), ("models", "gpt-5.5,o5-mini"), ("tpm", "10000"), ("rpm", "100"),
                        ("budget", "50")):
        e = form.find_element("css selector", f"[name={name}]")
        e.clear()
        e.send_keys(value)
    console.submit(form.find_element("css selector", SUBMIT))
    assert console.status == 200 and console.page in ("project", "overview"), console.describe()
    p = bursar.ctl("project", "show", "Staging", token=ada.token)
    p = p.get("project", p)
    assert (p["tpm"], p["rpm"], p["monthly_budget_nusd"]) == (10000, 100, 50 * bursar.NANO), p
    assert sorted(p["models"]) == ["gpt-5.5", "o5-mini"], p
    console.open(urls["overview"])
    assert console.has(f"[data-project-id='{p['id']}']"), "the new project has no card"


def test_project_admin_changes_a_role(console, urls, seed):
    """A Project Admin's role form: Ben made Project Admin of Production, then Project Member again."""
    cleo, ben = seed.users["admin"], seed.users["member"]
    console.sign_in(cleo)

    def set_role(value: str):
        console.open(urls["project:Production"])
        row = console.one(f"table[data-action=view_project_members] tr[data-member-id='{ben.id}']")
        form = row.find_element("css selector", "form[data-action=edit_member_roles]")
        Select(form.find_element("css selector", "select[name=role]")).select_by_value(value)
        console.submit(form.find_element("css selector", SUBMIT))
        assert console.status == 200, console.describe()
        listed = bursar.ctl("project", "member", "list", "Production", token=cleo.token)
        listed = listed.get("members", listed) if isinstance(listed, dict) else listed
        return [m["role"] for m in listed if m["user_id"] == ben.id]

    assert set_role("admin") == ["admin"]
    assert set_role("member") == ["member"]
