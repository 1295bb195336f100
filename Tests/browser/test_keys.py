"""A key's life through the console, seen from the data plane: the Project Member creates a key with
every field of the new-key form, the secret is shown once, CHECK allows it; revoked in the
console, the next CHECK is denied key_revoked."""

from __future__ import annotations

import calendar
import time

from selenium.webdriver.support.ui import Select

import bursar
from browser import SUBMIT


def test_key_lifecycle(console, urls, seed):
    ben = seed.users["member"]
    console.sign_in(ben)
    console.open(urls["project:Production"])
    assert console.page == "project", console.describe()
    console.submit(console.one("a[data-action=create_and_manage_own_keys]"))  # a link: a GET
    assert console.page == "key-new", console.describe()
    assert console.path.split("?")[0] == urls["key-new:Production"], console.path

    # Only the models Ben may grant: his grant's four, not the project's other two.
    offered = {e.get_attribute("value") for e in console.all("form#new-key input[name=models]")}
    assert offered == set(bursar.MEMBER_GRANT["models"]), offered

    form = console.one("form#new-key")

    def type_in(name: str, value: str):
        e = form.find_element("css selector", f"input[name={name}]")
        e.clear()  # the form may come with a default (e.g. 30 days)
        e.send_keys(value)
    type_in("name", "ben-lifecycle")
    type_in("max_spend", "150")
    Select(form.find_element("css selector", "select[name=period]")).select_by_value("weekly")
    type_in("tpm", "20000")
    type_in("rpm", "60")
    form.find_element("css selector", "input[name=models][value='gpt-5.5']").click()
    days = form.find_elements("css selector", "input[name=expires_in_days]")
    if days:
        type_in("expires_in_days", "30")
    else:  # the contract allows a date instead
        on = form.find_element("css selector", "input[name=expires_on]")
        console.driver.execute_script(
            "arguments[0].value = arguments[1]", on,
            time.strftime("%Y-%m-%d", time.gmtime(time.time() + 30 * 86400)))
    logging = form.find_element("css selector", "input[name=content_logging_disabled]")
    if not logging.is_selected():
        logging.click()
    console.submit(form.find_element("css selector", SUBMIT))

    assert (console.status, console.page) == (201, "key-created"), console.describe()
    created_at = console.path
    secret = console.one("code#secret").text.strip()
    assert secret.startswith("sk-br-") and len(secret) > 20, secret
    assert console.has("button#copy-secret")
    key_id = int(console.one("[data-key-id]").get_attribute("data-key-id"))

    # Every field of the form reached the key.
    k = bursar.ctl("key", "show", str(key_id), token=ben.token)
    k = k.get("key", k)
    assert k["name"] == "ben-lifecycle" and k["user_id"] == ben.id, k
    assert k["project_id"] == seed.projects["Production"]["id"], k
    assert k["max_spend_nusd"] == 150 * bursar.NANO and k["period"] == "weekly", k
    assert (k["tpm"], k["rpm"]) == (20000, 60), k
    assert k["models"] == ["gpt-5.5"], k
    assert k["content_logging_disabled"] is True, k
    days_left = (k["expires_at_ms"] / 1000 - time.time()) / 86400
    assert 29 < days_left <= 31, f"expires in {days_left:.2f} days, not 30"

    # The secret works over the binary protocol, for its model only.
    d = bursar.check(secret, "gpt-5.5", tokens=800, cost="0.01")
    assert d["allowed"] and d["key_id"] == key_id, d
    assert bursar.check(secret, "o5-mini")["reason"] == "model_not_allowed"

    # Never shown again: not after Back (the POST's answer is not kept), not on the project page,
    # the overview, or the new-key form.
    console.open(urls["project:Production"])
    console.driver.back()
    console.wait_for("body", visible=False)
    assert console.driver.current_url.endswith(created_at), console.driver.current_url
    assert secret not in console.driver.page_source, "Back shows the secret again"
    for page in ("project:Production", "overview", "key-new:Production"):
        console.open(urls[page])
        assert console.status == 200, console.describe()
        assert secret not in console.driver.page_source, f"{page} shows the secret again"
    console.open(urls["overview"])
    row = console.one(f"table#my-keys tr[data-key-id='{key_id}']")
    assert secret[-4:] in row.text, row.text

    # Revoke in the console: back on the project page, and the data plane refuses the key.
    console.open(urls["project:Production"])
    row = console.one(f"table#keys tr[data-key-id='{key_id}']")
    assert row.get_attribute("data-key-user") == str(ben.id)
    revoke = console.one(f"form[data-revoke='{key_id}']")
    console.submit(revoke.find_element("css selector", SUBMIT))
    assert (console.page, console.path.split("?")[0]) == ("project", urls["project:Production"]), console.describe()
    assert secret not in console.driver.page_source
    d = bursar.check(secret, "gpt-5.5")  # the very next CHECK: revocation is not eventual
    assert not d["allowed"] and d["reason"] == "key_revoked", d


def test_key_with_shorthand_limits_and_a_date(console, urls, seed):
    """The other spellings the form accepts: TPM as 20k, cents in max spend, no reset (lifetime),
    expiry as a date (the key stops working on that day, UTC)."""
    cleo = seed.users["admin"]
    console.sign_in(cleo)
    console.open(urls["key-new:Production"])
    form = console.one("form#new-key")
    on = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 45 * 86400))
    for name, value in (("name", "cleo-dated"), ("max_spend", "12.50"), ("tpm", "20k"), ("rpm", "300")):
        e = form.find_element("css selector", f"input[name={name}]")
        e.clear()
        e.send_keys(value)
    Select(form.find_element("css selector", "select[name=period]")).select_by_value("lifetime")
    for e in form.find_elements("css selector", "input[name=expires_in_days]"):
        e.clear()  # the date decides
    console.driver.execute_script("arguments[0].value = arguments[1]",
                                  form.find_element("css selector", "input[name=expires_on]"), on)
    console.submit(form.find_element("css selector", SUBMIT))
    assert (console.status, console.page) == (201, "key-created"), console.describe()
    secret = console.one("code#secret").text.strip()
    key_id = int(console.one("[data-key-id]").get_attribute("data-key-id"))
    k = bursar.ctl("key", "show", str(key_id), token=cleo.token)
    k = k.get("key", k)
    assert (k["tpm"], k["rpm"], k["period"]) == (20000, 300, "lifetime"), k
    assert k["max_spend_nusd"] == 12_500_000_000, k
    assert k["models"] == [] and k["content_logging_disabled"] is False, k
    day = calendar.timegm(time.strptime(on, "%Y-%m-%d"))  # 00:00 UTC of that date
    assert day * 1000 <= k["expires_at_ms"] <= (day + 86400) * 1000, (on, k["expires_at_ms"])
    assert bursar.check(secret, "mistral-large-3", tokens=100)["allowed"]
