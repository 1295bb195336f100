"""The permission matrix, per role, driven by proto/permissions.tsv: for every row and every role,
on the page where the action lives, an element with data-action=<action> is present iff the
role's standing allows it; plus which pages exist for whom, which rows they list, and the header."""

from __future__ import annotations

import re

import pytest

import bursar

ROWS = bursar.load_permissions()
ROLES = ["owner", "admin", "member", "outsider"]  # Ada, Cleo, Ben, Dan (see bursar.seed_organization)
PAGES = ["overview", "organization", "audit", "project:Production", "project:Sandbox",
         "key-new:Production", "key-new:Sandbox"]

# Where each action lives (the contract's "Pages"): (page, the tag of the element carrying
# data-action, or None where the contract leaves it open). "project" means every project's page,
# judged with the user's standing in that project; the others are judged with their standing in
# the organization. view_project is the project itself: its card and its page (below).
# Every row of the organization section lives on the organization page, linked from the overview.
PLACES = {
    "create_project": [("overview", "form")],
    "view_project": [],
    "edit_project_settings": [("project", "form")],
    "delete_project": [("project", None)],
    "view_project_members": [("project", "table")],
    "add_project_members": [("project", "form")],
    "edit_member_roles": [("project", "form")],
    "create_and_manage_own_keys": [("project", "a")],
    "manage_all_keys_in_project": [("project", None)],
    "manage_keys_across_all_projects": [("overview", "a"), ("organization", "section")],
}


def places(row: bursar.Permission) -> list:
    if row.section == "organization":
        return [("overview", "a"), ("organization", "section")]
    return PLACES[row.action]


def org_allowed(row: bursar.Permission, user: bursar.User) -> bool:
    verdicts = {row.allowed(s) for s in user.org_standings()}
    assert len(verdicts) == 1, f"{row.action}: {user.email}'s standings {user.org_standings()} disagree"
    return verdicts.pop()


@pytest.fixture(scope="module")
def views(console, urls, seed):
    """Each role's pages, read once: role -> page -> snapshot (see browser.SNAPSHOT_JS)."""
    cache = {}

    def read(role: str) -> dict:
        if role not in cache:
            console.sign_in(seed.users[role])
            cache[role] = {}
            for page in PAGES:
                console.open(urls[page])
                snap = console.snapshot()
                snap["html"] = console.driver.page_source
                cache[role][page] = snap
        return cache[role]
    return read


def test_every_row_has_a_place():
    unplaced = [r.action for r in ROWS if r.section != "organization" and r.action not in PLACES]
    assert not unplaced, f"permissions.tsv rows with no page in the contract: {unplaced}"
    assert len(ROWS) >= 16


@pytest.mark.parametrize("action", [r.action for r in ROWS])
@pytest.mark.parametrize("role", ROLES)
def test_action_present_iff_allowed(role, action, views, seed):
    row = next(r for r in ROWS if r.action == action)
    user = seed.users[role]
    v = views(role)
    wrong = []

    def judge(page_key: str, expected_page: str, tag, allowed: bool, standing: str):
        snap = v[page_key]
        tags = [t for a, t in snap["actions"] if a == action]
        where = f"{page_key} as {standing} (HTTP {snap['status']}, data-page={snap['page']!r})"
        if allowed:
            if snap["page"] != expected_page or snap["status"] != 200:
                wrong.append(f"{where}: allowed, but the page is not shown")
            elif not tags:
                wrong.append(f"{where}: allowed, but no [data-action={action}]")
            elif tag is not None and tag not in tags:
                wrong.append(f"{where}: [data-action={action}] is on {tags}, the contract says <{tag}>")
        elif tags:
            wrong.append(f"{where}: not allowed, but [data-action={action}] is there ({tags})")

    if action == "view_project":
        for name, p in seed.projects.items():
            standing = user.standing(name)
            allowed = row.allowed(standing)
            cards = [c["id"] for c in v["overview"]["cards"]]
            snap = v[f"project:{name}"]
            if allowed:
                if str(p["id"]) not in cards:
                    wrong.append(f"{name} as {standing}: no [data-project-id={p['id']}] card on the overview")
                if (snap["status"], snap["page"]) != (200, "project"):
                    wrong.append(f"{name} as {standing}: its page is {snap['status']} {snap['page']!r}, not 200 project")
            else:
                if str(p["id"]) in cards:
                    wrong.append(f"{name} as {standing}: invisible, but its card is on the overview")
                if (snap["status"], snap["page"], snap["error"]) != (404, "error", "not_found"):
                    wrong.append(f"{name} as {standing}: its page is {snap['status']} {snap['page']!r} "
                                 f"{snap['error']!r}, not 404 error not_found")
    for page, tag in places(row):
        if page == "project":
            for name in seed.projects:
                standing = user.standing(name)
                judge(f"project:{name}", "project", tag, row.allowed(standing), standing)
        else:
            judge(page, page, tag, org_allowed(row, user), "/".join(sorted(user.org_standings())))
    assert not wrong, f"{user.email}, {action}:\n  " + "\n  ".join(wrong)


@pytest.mark.parametrize("role", ROLES)
def test_owner_only_pages(role, views, seed):
    user = seed.users[role]
    for page in ("organization", "audit"):
        snap = views(role)[page]
        if user.org_owner:
            assert (snap["status"], snap["page"]) == (200, page), (page, snap["status"], snap["page"])
        else:
            assert (snap["status"], snap["page"], snap["error"]) == (403, "error", "forbidden"), \
                (page, snap["status"], snap["page"], snap["error"])


def check_header(snap: dict, user: bursar.User) -> list:
    wrong = []
    if snap["whoami"] is None or user.email not in snap["whoami"]:
        wrong.append(f"[data-testid=whoami] is {snap['whoami']!r}")
    if not snap["signOut"]:
        wrong.append("no form#sign-out")
    if "overview" not in snap["nav"]:
        wrong.append(f"no a[data-nav=overview] in nav ({snap['nav']})")
    owner_links = {"organization", "audit"} & set(snap["nav"])
    if owner_links != ({"organization", "audit"} if user.org_owner else set()):
        wrong.append(f"nav links {snap['nav']} for an {'Owner' if user.org_owner else 'Member'}")
    unprotected = [name for name, has in snap["csrfInputs"] if not has]
    if unprotected:
        wrong.append(f"POST forms without a hidden _csrf: {unprotected}")
    return wrong


@pytest.mark.parametrize("role", ROLES)
def test_header(role, views, seed):
    user = seed.users[role]
    wrong = [f"{page}: {w}" for page, snap in views(role).items() if snap["page"] != "error"
             for w in check_header(snap, user)]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("role", [r for r in ROLES if r != "owner"])
def test_header_on_error_pages(role, views, seed):
    """The contract's header is on every signed-in page, the 403 and 404 pages included."""
    user = seed.users[role]
    errors = {page: snap for page, snap in views(role).items() if snap["page"] == "error"}
    assert errors, "no error page to look at"
    wrong = [f"{page} ({snap['status']} {snap['error']}): {w}" for page, snap in errors.items()
             for w in check_header(snap, user)]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("role", ROLES)
def test_overview_roles_and_cards(role, views, seed):
    user = seed.users[role]
    ov = views(role)["overview"]
    assert ov["orgRole"] == ("Owner" if user.org_owner else "Member"), ov["orgRole"]
    visible = {str(p["id"]): name for name, p in seed.projects.items()
               if user.org_owner or name in user.projects}
    cards = {c["id"]: c for c in ov["cards"]}
    assert set(cards) == set(visible), f"cards {sorted(cards)}, expected {sorted(visible)} ({visible})"
    for pid, name in visible.items():
        c = cards[pid]
        want = "Project Admin" if user.standing(name) in ("org_owner", "project_admin") else "Project Member"
        assert c["role"] == want, (name, c["role"], want)
        assert c["keyCount"] is not None and re.search(r"\d", c["keyCount"]), (name, c["keyCount"])
        assert c["budget"] is not None and c["budget"]["bar"], f"{name}: no budget <progress>/progressbar: {c['budget']}"
        tpm, rpm = seed.projects[name]["tpm"], seed.projects[name]["rpm"]
        assert any(f in c["text"] for f in (f"{tpm:,}", str(tpm), f"{tpm // 1000}k", f"{tpm // 1000}K")), \
            f"{name}: TPM {tpm} not on its card: {c['text']!r}"
        assert str(rpm) in c["text"], f"{name}: RPM {rpm} not on its card: {c['text']!r}"
        assert seed.projects[name]["models"][0] in c["text"], f"{name}: no models on its card: {c['text']!r}"
    if "Production" in visible.values():
        prod = cards[str(seed.projects["Production"]["id"])]["budget"]
        assert prod["value"] and prod["value"] > 0 and prod["max"] and prod["max"] > 0, \
            f"Production's budget bar is empty with $1236.50 held against it: {prod}"


@pytest.mark.parametrize("role", ROLES)
def test_my_keys(role, views, seed):
    """The overview's own keys: every seeded key of the user, nobody else's, never a secret."""
    ov = views(role)["overview"]
    rows = {r["id"]: r for r in ov["myKeys"]}
    mine = seed.keys_of(user=role)
    others = {str(k.id) for k in seed.keys if k.user != role}
    missing = [k.name for k in mine if str(k.id) not in rows]
    assert not missing, f"own keys missing from table#my-keys: {missing}"
    assert not (set(rows) & others), f"someone else's keys in table#my-keys: {sorted(set(rows) & others)}"
    for k in mine:
        text = rows[str(k.id)]["text"]
        assert k.secret[-4:] in text and k.secret not in text, (k.name, text)
        if k.name == "ben-prod":  # expires in 30 days: shown as a relative time
            assert re.search(r"\b(29|30) days\b|\b4 weeks\b|\b1 month\b", text), f"{k.name}: expiry {text!r}"
        held = bursar.SEEDED_SPEND.get(k.name)
        if held is not None:  # spend in the current window: the estimate the seed's CHECK holds
            shown = re.escape(f"${held:,.2f}") + (f"|{re.escape(f'${held:,.0f}')}(?![\\d.])" if held == int(held) else "")
            assert re.search(shown, text), \
                f"{k.name}: ${held} spent, not shown: {text!r}"


@pytest.mark.parametrize("role", ROLES)
def test_project_keys_and_members(role, views, seed):
    user = seed.users[role]
    manage_all = next(r for r in ROWS if r.action == "manage_all_keys_in_project")
    view_members = next(r for r in ROWS if r.action == "view_project_members")
    for name, p in seed.projects.items():
        snap = views(role)[f"project:{name}"]
        if snap["page"] != "project":
            continue  # invisible projects: test_action_present_iff_allowed[view_project]
        assert snap["guardrails"], f"{name}: no [data-testid=guardrails]"
        rows = {r["id"]: r for r in snap["keys"]}
        foreign = {str(k.id) for k in seed.keys if k.project != name}
        assert not (set(rows) & foreign), f"{name}: keys of another project listed: {sorted(set(rows) & foreign)}"
        for r in rows.values():
            assert r["user"] is not None, f"{name}: tr[data-key-id={r['id']}] has no data-key-user"
        if manage_all.allowed(user.standing(name)):
            expected = seed.keys_of(project=name)
        else:
            expected = seed.keys_of(project=name, user=role)
            strangers = [r["id"] for r in rows.values() if r["user"] != str(user.id)]
            assert not strangers, f"{name}: {user.email} sees others' keys {strangers}"
        for k in expected:
            r = rows.get(str(k.id))
            assert r is not None, f"{name}: key {k.name} (id {k.id}) missing from table#keys for {user.email}"
            assert r["user"] == str(seed.users[k.user].id), (k.name, r["user"])
            assert str(k.id) in r["revoke"], f"{name}: no form[data-revoke={k.id}] in the row of {k.name}"
            assert k.secret not in r["text"]
        if view_members.allowed(user.standing(name)):
            members = set(snap["members"])
            want = {str(u.id) for u in seed.users.values() if name in u.projects}
            outside = {str(u.id) for u in seed.users.values() if not u.org_owner and name not in u.projects}
            assert want <= members, f"{name}: members {sorted(members)}, missing {sorted(want - members)}"
            assert not (members & outside), f"{name}: non-members listed: {sorted(members & outside)}"


@pytest.mark.parametrize("role", ROLES)
def test_no_secret_on_any_page(role, views, seed):
    for page, snap in views(role).items():
        for k in seed.keys:
            assert k.secret not in snap["html"], f"{page} shows the secret of {k.name}"
        assert not re.search(r"sk-br-[A-Za-z0-9_-]{40}", snap["html"]), f"{page} shows a whole secret"


def test_forms_fields(views):
    """The fields the contract names, in the forms that carry the actions (as the Owner sees them)."""
    v = views("owner")
    fields = v["overview"]["formFields"].get("create_project")
    assert fields is not None, "no form in or at [data-action=create_project]"
    assert {"name", "models", "tpm", "rpm", "budget", "_csrf"} <= set(fields), fields
    p = v["project:Production"]["formFields"]
    assert {"models", "tpm", "rpm", "budget", "_csrf"} <= set(p.get("edit_project_settings", [])), p
    roles = v["project:Production"]["roleOptions"]
    assert roles and all(set(r) == {"admin", "member"} for r in roles), roles
