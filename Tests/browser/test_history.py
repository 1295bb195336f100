"""Usage-history charts, the tables behind them, their CSV, and budget alert badges: real traffic
(CHECK then SETTLE over the binary protocol, with the repository's Python client) on four past days
and today, then every chart page compared with what the admin API answers for the same range,
grouping and caller. Screenshots of each chart page at 1280 and 390 px go with the others."""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import subprocess
import urllib.parse
from datetime import date, datetime, timedelta, timezone

import pytest

import bursar
from conftest import ARTIFACTS, another_bursard

TOP = 6  # series drawn by name; the rest are summed as "Other"

# Before today, through a bursard on the organization's frozen test clock (set to noon UTC of the
# day, a minute apart per request): (days ago, key, model, tokens, cost in nano-USD). prod-api uses
# every Production model, so its key page stacks six models.
PAST = [
    (6, "prod-api", "gpt-5.5", 1800, 2_400_000_000),
    (6, "prod-batch", "o5-mini", 900, 350_000_000),
    (4, "prod-api", "claude-opus-4.8", 2200, 5_100_000_000),
    (4, "ben-prod", "gemini-3-pro", 700, 1_250_000_000),
    (4, "sandbox-ci", "gpt-5.5", 400, 600_000_000),
    (3, "prod-api", "gemini-3-pro", 1200, 1_800_000_000),
    (2, "ops-canary", "gemini-3-pro", 1500, 3_000_000_000),
    (2, "ben-notebook", "o5-mini", 300, 12_000_000_000),
    (2, "prod-api", "llama-4-405b", 3000, 700_000_000),
    (1, "prod-api", "o5-mini", 5000, 900_000_000),
    (1, "prod-api", "mistral-large-3", 800, 1_100_000_000),
    (1, "sandbox-experiments", "o5-mini", 2500, 450_000_000),
    (1, "ben-notebook", "o5-mini", 200, 4_000_000_000),
]
# Today, through the main bursard: 85 % of ben-notebook's $20 a day (alerts 50 and 80); eight more
# Sandbox keys, so its page folds keys into "Other"; hist-capped spends its whole $1 (alert 100).
HIST_KEYS = 7
TODAY_NOTEBOOK = 17_000_000_000


def dollars(n: int) -> str:
    """Units.dollars: nano-USD as dollars, at least cents, more decimals only when not zero."""
    whole, frac = divmod(abs(n), bursar.NANO)
    return ("-$" if n < 0 else "$") + f"{whole:,}." + f"{frac:09d}".rstrip("0").ljust(2, "0")


def shown(measure: str, v: int) -> str:
    return dollars(v) if measure == "spend" else f"{v:,}"


def api(token: str, path: str) -> bursar.Response:
    r = bursar.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    assert r.status == 200, (path, r.status, r.body[:300])
    return r


def api_history(seed, token: str, **query) -> dict:
    return json.loads(api(token, f"/v1/orgs/{seed.org_id}/usage/history?{urllib.parse.urlencode(query)}").body)


def set_clock(seed, us: int | None):
    key = f"br:{{o{seed.org_id}}}:testclock"
    args = ["SET", key, str(us)] if us is not None else ["DEL", key]
    subprocess.run(["redis-cli", "-u", bursar.REDIS_URL, *args], check=True, capture_output=True, timeout=10)


@pytest.fixture(scope="module")
def frozen_clock_bursard(seed):
    """A second bursard on the same Redis whose limiter reads the organization's frozen test clock
    (BURSAR_TEST_FROZEN_CLOCK=1, honoured by debug builds); yields its data-plane address."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"127.0.0.1:{port}"
    server = another_bursard("frozen-clock", data_plane=address, env={"BURSAR_TEST_FROZEN_CLOCK": "1"})
    next(server)
    yield address
    set_clock(seed, None)
    next(server, None)  # stops it


@pytest.fixture(scope="module")
def traffic(seed, frozen_clock_bursard):
    """Spends on four past days and today; returns today's date (UTC, the limiter's)."""
    owner = seed.users["owner"]
    today = date.fromisoformat(api_history(seed, owner.token)["to"])
    secrets = {k.name: k.secret for k in seed.keys}
    with bursar.data_plane(frozen_clock_bursard) as client:
        for i, (ago, name, model, tokens, cost) in enumerate(PAST):
            noon = datetime.combine(today - timedelta(days=ago), datetime.min.time(), timezone.utc) + timedelta(hours=12, minutes=i)
            set_clock(seed, int(noon.timestamp()) * 1_000_000)
            bursar.spend(client, secrets[name], model, tokens, cost)
    set_clock(seed, None)
    for i in range(1, HIST_KEYS + 1):
        k = bursar.ctl("key", "create", "--project", "Sandbox", "--name", f"hist-{i}", token=owner.token)
        secrets[f"hist-{i}"] = k["secret"]
    capped = bursar.ctl("key", "create", "--project", "Sandbox", "--name", "hist-capped", "--budget", "1",
                        "--period", "daily", token=owner.token)
    with bursar.data_plane() as client:
        bursar.spend(client, secrets["ben-notebook"], "o5-mini", 150, TODAY_NOTEBOOK)
        for i in range(1, HIST_KEYS + 1):
            bursar.spend(client, secrets[f"hist-{i}"], "gpt-5.5", 100 * i, 100_000_000 * i)
        bursar.spend(client, capped["secret"], "o5-mini", 50, bursar.NANO)
    # The frozen clock reached the history: the past days are there (a release bursard ignores it).
    days = {r["day"] for r in api_history(seed, owner.token, group_by="day")["rows"]}
    expected = {(today - timedelta(days=ago)).isoformat() for ago, *_ in PAST}
    assert expected <= days, f"no traffic on {sorted(expected - days)}: is bursard a debug build (BURSAR_TEST_FROZEN_CLOCK)?"
    return {"today": today, "capped": capped["key"]["id"]}


# What the page shows, read once: the history section, each chart, its table, legend and CSV link.
READ_JS = r"""
const sec = document.querySelector('[data-testid=history]');
if (!sec) return null;
const cells = (tr) => Array.from(tr.querySelectorAll('td')).map(td => [td.dataset.value, td.textContent.trim()]);
const charts = {};
for (const f of sec.querySelectorAll('figure[data-testid=chart]')) {
  const t = f.querySelector('table[data-testid=chart-table]');
  const svg = f.querySelector('svg.chart-svg');
  const line = svg && svg.querySelector('[data-testid=budget-line]');
  charts[f.dataset.measure] = {
    bars: Number(f.dataset.bars), seriesCount: Number(f.dataset.seriesCount),
    columns: Array.from(t.querySelectorAll('thead th[data-series]')).map(th => ({
      id: th.dataset.series, members: th.dataset.members ? th.dataset.members.split(' ') : [], name: th.textContent.trim()})),
    rows: Array.from(t.querySelectorAll('tbody tr')).map(tr => ({day: tr.dataset.day, cells: cells(tr)})),
    foot: cells(t.querySelector('tfoot tr')),
    legend: Array.from(f.querySelectorAll('.legend li[data-series]')).map(li => li.dataset.series),
    csv: f.querySelector('a[data-testid=csv]').getAttribute('href'),
    noUsage: !!f.querySelector('[data-testid=no-usage]'),
    svg: svg && {
      role: svg.getAttribute('role'), labelledby: svg.getAttribute('aria-labelledby'),
      title: (svg.querySelector(':scope > title') || {}).textContent,
      days: Array.from(svg.querySelectorAll('g[data-day]')).map(g => g.dataset.day),
      rects: Array.from(svg.querySelectorAll('rect[data-series]')).map(r => [r.parentNode.dataset.day, r.dataset.series, r.dataset.value]),
      line: line ? line.querySelector('title').textContent : null,
      width: svg.getBoundingClientRect().width,
    },
  };
}
const error = sec.querySelector('[data-testid=range-error]');
return {from: sec.dataset.from, to: sec.dataset.to, charts, error: error ? error.textContent.trim() : null};
"""


def read(console) -> dict:
    h = console.driver.execute_script(READ_JS)
    assert h is not None, f"no [data-testid=history] on {console.describe()}"
    return h


def ranked(rows: list, dimension: str) -> tuple:
    """The API's rows as the charts' series: ids ranked by spend, then tokens, then name; a series
    with neither left out; per id and day, the spend and the tokens."""
    by = {}
    for r in rows:
        sid, name = {"project": (f"project:{r.get('project_id')}", r.get("project_name") or f"Project {r.get('project_id')} (deleted)"),
                     "key": (f"key:{r.get('key_id')}", r.get("key_name") or f"Key {r.get('key_id')} (deleted)"),
                     "model": (f"model:{r.get('model', '')}", r.get("model") or "(no model)")}[dimension]
        s = by.setdefault(sid, {"name": name, "spend": {}, "tokens": {}})
        for m, field in (("spend", "spend_nusd"), ("tokens", "tokens")):
            s[m][r["day"]] = s[m].get(r["day"], 0) + r[field]
    order = sorted((sid for sid, s in by.items() if sum(s["spend"].values()) or sum(s["tokens"].values())),
                   key=lambda sid: (-sum(by[sid]["spend"].values()), -sum(by[sid]["tokens"].values()), by[sid]["name"], sid))
    return order, by


def expect_history(console, token: str, seed, dimension: str, **scope) -> dict:
    """The page's charts and tables equal the admin API's history for the same range, grouping and
    caller: every cell, every day's total, the totals; the bars and series drawn; the CSV link."""
    h = read(console)
    assert h["error"] is None, h["error"]
    query = {"from": h["from"], "to": h["to"], "group_by": f"day,{dimension}", **{k: str(v) for k, v in scope.items()}}
    answer = api_history(seed, token, **query)
    order, by = ranked(answer["rows"], dimension)
    columns = order[:TOP] + (["other"] if len(order) > TOP else [])
    first, last = date.fromisoformat(h["from"]), date.fromisoformat(h["to"])
    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    for measure, field in (("spend", "spend_nusd"), ("tokens", "tokens")):
        chart = h["charts"][measure]
        assert [c["id"] for c in chart["columns"]] == columns, (measure, chart["columns"], order)
        assert chart["legend"] == columns and chart["seriesCount"] == len(columns)
        members = {c: ([c] if c != "other" else order[TOP:]) for c in columns}
        if "other" in columns:
            assert chart["columns"][-1]["members"] == order[TOP:]
        assert [r["day"] for r in chart["rows"]] == days
        drawn = set()
        for row in chart["rows"]:
            want = [sum(by[s][measure].get(row["day"], 0) for s in members[c]) for c in columns]
            total = sum(r[field] for r in answer["rows"] if r["day"] == row["day"])
            assert row["cells"] == [[str(v), shown(measure, v)] for v in want + [total]], (measure, row)
            drawn |= {(row["day"], c, str(v)) for c, v in zip(columns, want) if v}
        foot = [sum(sum(by[s][measure].values()) for s in members[c]) for c in columns] + [answer["totals"][field]]
        assert chart["foot"] == [[str(v), shown(measure, v)] for v in foot], (measure, chart["foot"])
        bar_days = [r["day"] for r in chart["rows"] if r["cells"][-1][0] != "0"]
        if columns:
            svg = chart["svg"]
            assert svg["role"] == "img" and svg["labelledby"] and svg["title"], svg
            assert svg["days"] == bar_days and chart["bars"] == len(bar_days)
            assert {tuple(r) for r in svg["rects"]} == drawn and len(svg["rects"]) == len(drawn)
        else:
            assert chart["noUsage"] and chart["svg"] is None and chart["bars"] == 0
        assert chart["csv"] == h["charts"]["spend"]["csv"]
    # The CSV beside the charts, downloaded with this browser's session: the admin API's CSV, whose
    # sums are the totals.
    link = h["charts"]["spend"]["csv"]
    assert dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(link).query)) == query, link
    got = bursar.request("GET", link, cookie=console.session_header())
    assert got.status == 200 and got.header("Content-Type") == "text/csv; charset=utf-8", (got.status, got.body[:200])
    assert got.header("Content-Disposition").startswith("attachment; filename="), got.headers
    table = list(csv.DictReader(io.StringIO(got.body)))
    assert sum(int(r["spend_nusd"]) for r in table) == answer["totals"]["spend_nusd"]
    assert sum(int(r["tokens"]) for r in table) == answer["totals"]["tokens"]
    assert got.body == api(token, f"/v1/orgs/{seed.org_id}/usage/history?{urllib.parse.urlencode(query)}&format=csv").body
    return {"history": h, "answer": answer, "order": order}


def key_id(seed, name: str) -> int:
    return next(k.id for k in seed.keys if k.name == name)


def screenshot(console, name: str, path: str):
    d = os.path.join(ARTIFACTS, "screenshots")
    os.makedirs(d, exist_ok=True)
    for width, mobile in ((1280, False), (390, True)):
        file = os.path.join(d, f"{name}-{width}.png")
        info = console.screenshot(path, file, width, mobile)
        assert info["status"] == 200, (info, console.describe())
        assert info["scroll_width"] <= width, f"{name} at {width} px overflows sideways: {info}"
        assert os.path.getsize(file) > 5000, f"{file}: suspiciously small"
        with open(os.path.join(d, "sizes.jsonl"), "a") as f:
            f.write(json.dumps({"file": os.path.basename(file), **info}) + "\n")


# ---------------------------------------------------------------------------------------------

def test_overview_by_project(console, seed, urls, traffic):
    owner = seed.users["owner"]
    console.sign_in(owner)
    console.open(urls["overview"])
    got = expect_history(console, owner.token, seed, "project")
    h = got["history"]
    assert (h["from"], h["to"]) == ((traffic["today"] - timedelta(days=29)).isoformat(), traffic["today"].isoformat())
    assert {f"project:{p['id']}" for p in seed.projects.values()} <= set(got["order"])
    assert h["charts"]["spend"]["bars"] == 1 + len({ago for ago, *_ in PAST}), "a bar for each day with traffic"
    screenshot(console, "history-overview", urls["overview"])


def test_project_by_key_with_budget_pace(console, seed, urls, traffic):
    owner = seed.users["owner"]
    console.sign_in(owner)
    console.open(urls["project:Production"])
    got = expect_history(console, owner.token, seed, "key", project_id=seed.projects["Production"]["id"])
    assert {f"key:{k.id}" for k in seed.keys_of(project="Production")} <= set(got["order"])
    assert got["history"]["charts"]["spend"]["svg"]["line"] == "Budget pace ($2,000.00/mo)"
    assert got["history"]["charts"]["tokens"]["svg"]["line"] is None, "a budget is money: no line on tokens"
    screenshot(console, "history-project", urls["project:Production"])


def test_more_than_six_keys_fold_into_other(console, seed, urls, traffic):
    owner = seed.users["owner"]
    console.sign_in(owner)
    console.open(urls["project:Sandbox"])
    got = expect_history(console, owner.token, seed, "key", project_id=seed.projects["Sandbox"]["id"])
    assert len(got["order"]) == 2 + HIST_KEYS + 1 > TOP
    other = got["history"]["charts"]["spend"]["columns"][-1]
    assert other["id"] == "other" and other["name"] == f"Other ({len(got['order']) - TOP})"


@pytest.mark.parametrize("name", ["ben-notebook", "prod-api"])
def test_key_by_model(name, console, seed, traffic):
    owner = seed.users["owner"]
    console.sign_in(owner)
    path = f"{console.org_path}/keys/{key_id(seed, name)}"
    console.open(path)
    assert (console.status, console.page) == (200, "key"), console.describe()
    got = expect_history(console, owner.token, seed, "model", key_id=key_id(seed, name))
    models = {m for _, k, m, *_ in PAST if k == name}
    assert {f"model:{m}" for m in models} <= set(got["order"])
    line = got["history"]["charts"]["spend"]["svg"]["line"]
    if name == "ben-notebook":  # $20 a day: the line is the budget itself
        assert line == "Daily budget $20.00"
        screenshot(console, "history-key", path)
    else:  # prod-api: $800 a month, as its daily pace; six models, no Other
        assert line == "Budget pace ($800.00/mo)"
        assert len(got["order"]) == 6 and "other" not in got["history"]["charts"]["spend"]["legend"]


def test_range_form(console, seed, urls, traffic):
    owner = seed.users["owner"]
    console.sign_in(owner)
    console.open(urls["project:Production"])
    first, last = traffic["today"] - timedelta(days=4), traffic["today"] - timedelta(days=1)
    form = console.one("form[data-testid=range]")
    console.driver.execute_script(
        "arguments[0].elements.from.value = arguments[1]; arguments[0].elements.to.value = arguments[2]",
        form, first.isoformat(), last.isoformat())
    console.submit(form.find_element("css selector", "button[type=submit]"))
    assert console.status == 200 and console.page == "project", console.describe()
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(console.path).query))
    assert (q["from"], q["to"]) == (first.isoformat(), last.isoformat()), console.path
    got = expect_history(console, owner.token, seed, "key", project_id=seed.projects["Production"]["id"])
    assert (got["history"]["from"], got["history"]["to"]) == (first.isoformat(), last.isoformat())
    assert len(got["history"]["charts"]["spend"]["rows"]) == 4
    assert console.one("#h-from").get_attribute("value") == first.isoformat(), "the form shows the range shown"


@pytest.mark.parametrize("query,message", [
    ("from=2026-02-30", "From must be a date as YYYY-MM-DD, not '2026-02-30'."),
    ("from=2026-05-10&to=2026-05-01", "From (2026-05-10) is after to (2026-05-01)."),
    ("to=yesterday", "To must be a date as YYYY-MM-DD, not 'yesterday'."),
])
def test_bad_range_is_a_clear_400(query, message, console, seed, urls, traffic):
    console.sign_in(seed.users["owner"])
    console.open(f"{urls['project:Production']}?{query}")
    assert (console.status, console.page) == (400, "project"), console.describe()
    h = read(console)
    assert h["error"] == message and h["charts"] == {}
    assert console.one("[data-testid=range-error]").is_displayed()
    assert console.one("[data-testid=guardrails]").is_displayed(), "the rest of the page is still there"
    raw = bursar.request("GET", f"{console.org_path}/usage/history.csv?{query}", cookie=console.session_header())
    assert (raw.status, raw.page, raw.error) == (400, "error", "invalid"), (raw.status, raw.body[:300])


def test_project_member_sees_only_their_keys(console, seed, urls, traffic):
    ben = seed.users["member"]
    console.sign_in(ben)
    console.open(urls["project:Production"])
    got = expect_history(console, ben.token, seed, "key", project_id=seed.projects["Production"]["id"])
    mine = {f"key:{k.id}" for k in seed.keys_of(user="member")}
    others = {f"key:{k.id}" for k in seed.keys if k.user != "member"}
    assert mine <= set(got["order"]) and not (set(got["order"]) & others), got["order"]
    console.open(urls["overview"])
    got = expect_history(console, ben.token, seed, "project")
    assert got["order"] == [f"project:{seed.projects['Production']['id']}"]
    # Someone else's key: refused as the admin API refuses it.
    query = f"key_id={key_id(seed, 'prod-api')}"
    denied = bursar.request("GET", f"{console.org_path}/usage/history.csv?{query}", cookie=console.session_header())
    by_api = bursar.request("GET", f"/v1/orgs/{seed.org_id}/usage/history?{query}", headers={"Authorization": f"Bearer {ben.token}"})
    assert denied.status == by_api.status == 403, (denied.status, by_api.status)
    assert denied.error == json.loads(by_api.body)["error"]["code"] == "forbidden"


def test_budget_alert_badges(console, seed, urls, traffic):
    owner = seed.users["owner"]
    console.sign_in(owner)

    def badge(css: str = "[data-testid=budget-alert]", root=None):
        found = (root or console.driver).find_elements("css selector", css)
        return (found[0].get_attribute("data-percent"), found[0].text) if found else None

    def alerts(path: str) -> list:
        return json.loads(api(owner.token, f"/v1/orgs/{seed.org_id}/{path}/usage").body)["spend"]["budget_alerts"]

    notebook, capped = key_id(seed, "ben-notebook"), traffic["capped"]
    assert alerts(f"keys/{notebook}") == [50, 80] and alerts(f"keys/{capped}") == [50, 80, 100]
    console.open(f"{console.org_path}/keys/{notebook}")
    assert badge() == ("80", "80% of budget")
    console.open(f"{console.org_path}/keys/{capped}")
    assert badge() == ("100", "Budget reached")

    production = seed.projects["Production"]["id"]
    highest = max(alerts(f"projects/{production}"), default=None)
    assert highest == 50, "the seed's $1,236.50 of $2,000 crossed 50 %"
    console.open(urls["project:Production"])
    assert badge("h1 [data-testid=budget-alert]") == ("50", "50% of budget")
    # Every key row: the highest alert of the key's window, as the admin API reports it.
    rows = console.all("table#keys tr[data-key-id]")
    assert len(rows) >= len(seed.keys_of(project="Production"))
    for row in rows:
        active = not row.find_elements("css selector", "td.row-actions .badge")
        highest = max(alerts(f"keys/{row.get_attribute('data-key-id')}"), default=None) if active else None
        want = None if highest is None else (str(highest), "Budget reached" if highest == 100 else f"{highest}% of budget")
        assert badge(root=row) == want, (row.text, want)
    assert badge(root=console.one(f"table#keys tr[data-key-id='{notebook}']")) == ("80", "80% of budget")
    assert badge(root=console.one(f"table#keys tr[data-key-id='{key_id(seed, 'ben-prod')}']")) is None, "ben-prod is under 50 %"
    console.open(urls["overview"])
    assert badge(root=console.one(f".card[data-project-id='{production}']")) == ("50", "50% of budget")
