"""The console as a person uses it: one headless Chromium (Selenium + chromedriver), pages opened
by URL or reached by submitting forms, read through the contract's data-* attributes."""

from __future__ import annotations

import base64
import os
import time
import urllib.parse

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from bursar import SERVER

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
WAIT = 15  # seconds: the longest any page may take (debug build, 2 cores)
SESSION_COOKIE = "bursar_session"
SUBMIT = "button:not([type=button]):not([type=reset]), input[type=submit]"  # a form's submit control


def start_chromium() -> webdriver.Chrome:
    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
                "--disable-extensions", "--no-first-run", "--password-store=basic"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(WAIT * 2)
    return driver


# One read of a page: everything the contract names, so a role's pages are read once and every
# permission row is checked against the same reading.
SNAPSHOT_JS = r"""
const q = (s, root) => Array.from((root || document).querySelectorAll(s));
const text = (s, root) => { const e = (root || document).querySelector(s); return e ? e.textContent.trim() : null; };
const nav = performance.getEntriesByType('navigation')[0];
const bar = (root) => {
  const e = root.querySelector('[data-testid=budget]');
  if (!e) return null;
  const tag = e.tagName.toLowerCase();
  const isBar = tag === 'progress' || e.getAttribute('role') === 'progressbar';
  const inner = isBar ? e : e.querySelector('progress, [role=progressbar]');
  if (!inner) return {tag, bar: false};
  const num = (v) => (v === null || v === '' ? null : Number(v));
  if (inner.tagName.toLowerCase() === 'progress')
    return {tag, bar: true, value: num(inner.getAttribute('value')), max: num(inner.getAttribute('max')) ?? 1};
  return {tag, bar: true, value: num(inner.getAttribute('aria-valuenow')), max: num(inner.getAttribute('aria-valuemax')) ?? 100};
};
const rows = (s) => q(s).map(r => ({
  id: r.dataset.keyId, user: r.dataset.keyUser ?? null, text: r.innerText,
  revoke: q('form[data-revoke]', r).map(f => f.dataset.revoke),
}));
return {
  status: nav ? nav.responseStatus : null,
  path: location.pathname + location.search,
  page: document.body ? document.body.dataset.page ?? null : null,
  error: document.body ? document.body.dataset.error ?? null : null,
  actions: q('[data-action]').map(e => [e.dataset.action, e.tagName.toLowerCase()]),
  nav: q('nav a[data-nav]').map(e => e.dataset.nav),
  whoami: text('[data-testid=whoami]'),
  orgRole: text('[data-testid=org-role]'),
  signOut: !!document.querySelector('form#sign-out'),
  cards: q('[data-project-id]').filter(e => !e.closest('table')).map(c => ({
    id: c.dataset.projectId, role: text('[data-testid=project-role]', c),
    keyCount: text('[data-testid=key-count]', c), budget: bar(c), text: c.innerText,
  })),
  myKeys: rows('table#my-keys tr[data-key-id]'),
  keys: rows('table#keys tr[data-key-id]'),
  members: q('table[data-action=view_project_members] tr[data-member-id]').map(r => r.dataset.memberId),
  guardrails: !!document.querySelector('[data-testid=guardrails]'),
  revokeForms: q('form[data-revoke]').map(f => f.dataset.revoke),
  // data-action -> the names of the fields of the form that is, or is inside, that element
  formFields: Object.fromEntries(q('[data-action]').map(e => {
    const f = e.tagName.toLowerCase() === 'form' ? e : e.querySelector('form');
    return [e.dataset.action, f ? Array.from(f.elements).map(x => x.name).filter(n => n) : null];
  }).filter(([, v]) => v)),
  roleOptions: q('form[data-action=edit_member_roles] select[name=role]').map(s => Array.from(s.options).map(o => o.value)),
  csrfInputs: q('form').filter(f => (f.method || '').toLowerCase() === 'post')
    .map(f => [f.id || f.dataset.action || f.getAttribute('action'), !!f.querySelector('input[type=hidden][name=_csrf]')]),
};
"""


class Console:
    def __init__(self, driver: webdriver.Chrome, server: str = SERVER):
        self.driver = driver
        self.server = server
        self.org_path = None  # /console/o/<org>, learnt from the first sign-in's redirect

    # -- navigation ----------------------------------------------------------------------------
    def url(self, path: str, server: str | None = None) -> str:
        return (server or self.server) + path

    def open(self, path: str, server: str | None = None) -> "Console":
        self.driver.get(self.url(path, server))
        self._loaded()
        return self

    def _loaded(self):
        WebDriverWait(self.driver, WAIT).until(
            lambda d: d.execute_script("return document.readyState") == "complete")

    def submit(self, element) -> "Console":
        """Clicks a submit button (accepting a confirm() if the page asks) and waits for the next page."""
        marker = self._mark()
        element.click()
        self._next_page(marker)
        return self

    def submit_bypassing_scripts(self, form) -> "Console":
        """form.submit(): no submit handlers and no constraint validation, the server alone decides."""
        marker = self._mark()
        self.driver.execute_script("HTMLFormElement.prototype.submit.call(arguments[0])", form)
        self._next_page(marker)
        return self

    def _mark(self) -> str:
        """Tags the current document, so the next one can be told apart from it."""
        marker = f"m{time.monotonic_ns()}"
        self.driver.execute_script("window.__bursarDocument = arguments[0]", marker)
        return marker

    def _next_page(self, marker: str):
        def arrived(d):
            try:
                d.switch_to.alert.accept()
            except (NoAlertPresentException, WebDriverException):
                pass
            try:
                return d.execute_script(
                    "return window.__bursarDocument !== arguments[0] && document.readyState === 'complete'", marker)
            except WebDriverException:  # between documents
                return False
        WebDriverWait(self.driver, WAIT).until(arrived, f"no new page after submitting: {self.driver.current_url}")

    # -- reading -------------------------------------------------------------------------------
    @property
    def status(self) -> int | None:
        """The HTTP status of the document shown (Navigation Timing's responseStatus)."""
        return self.driver.execute_script(
            "const n = performance.getEntriesByType('navigation')[0]; return n ? n.responseStatus : null")

    @property
    def page(self) -> str | None:
        return self.driver.find_element(By.TAG_NAME, "body").get_attribute("data-page")

    @property
    def error(self) -> str | None:
        return self.driver.find_element(By.TAG_NAME, "body").get_attribute("data-error")

    @property
    def path(self) -> str:
        u = urllib.parse.urlsplit(self.driver.current_url)
        return u.path + (("?" + u.query) if u.query else "")

    def one(self, css: str):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def has(self, css: str) -> bool:
        return bool(self.all(css))

    def snapshot(self) -> dict:
        return self.driver.execute_script(SNAPSHOT_JS)

    def describe(self) -> str:
        """For assertion messages: where the browser is and what it shows."""
        return f"[{self.status} {self.path} data-page={self.page!r} data-error={self.error!r}]"

    def session_cookie(self) -> dict | None:
        return self.driver.get_cookie(SESSION_COOKIE)

    def form_pairs(self, css: str) -> tuple:
        """What a form would post, as the browser builds it (FormData): ([(name, value)], action path)."""
        f = self.one(css)
        pairs = self.driver.execute_script("return Array.from(new FormData(arguments[0]).entries())", f)
        return [tuple(p) for p in pairs], urllib.parse.urlsplit(f.get_property("action")).path

    def session_header(self) -> str:
        """A Cookie header carrying this browser's console session, for raw HTTP requests."""
        c = self.session_cookie()
        assert c is not None, f"no {SESSION_COOKIE} cookie: {self.describe()}"
        return f"{SESSION_COOKIE}={c['value']}"

    def csrf(self) -> str:
        return self.one("input[name=_csrf]").get_attribute("value")

    def wait_for(self, css: str, visible: bool = True):
        def found(d):
            for e in d.find_elements(By.CSS_SELECTOR, css):
                if not visible or e.is_displayed():
                    return e
            return False
        return WebDriverWait(self.driver, WAIT).until(found, f"{css} never appeared on {self.describe()}")

    # -- sessions ------------------------------------------------------------------------------
    def sign_out_locally(self, server: str | None = None):
        """Forgets every cookie for the console's host (cookies do not tell ports apart)."""
        self.open("/console/sign-in", server)
        self.driver.delete_all_cookies()

    def sign_in(self, user, server: str | None = None) -> "Console":
        """The sign-in form with the user's personal access token; lands on their overview."""
        self.sign_out_locally(server)
        self.open("/console/sign-in", server)
        assert self.page == "sign-in", self.describe()
        self.one("form#sign-in input[name=token]").send_keys(user.token)
        self.submit(self.one("form#sign-in button[type=submit]"))
        assert self.page == "overview", f"signing in as {user.email}: {self.describe()}"
        if self.org_path is None and (server or self.server) == self.server:
            self.org_path = urllib.parse.urlsplit(self.driver.current_url).path.rstrip("/")
        return self

    # -- screenshots ---------------------------------------------------------------------------
    def screenshot(self, page_path: str, file: str, width: int, mobile: bool) -> dict:
        """A PNG of the whole page at this width: the viewport is made as tall as the document.
        mobile: a phone's viewport (the page's <meta name=viewport> applies, as on a phone)."""
        d = self.driver
        d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                          {"width": width, "height": 400, "deviceScaleFactor": 1, "mobile": mobile})
        try:
            self.open(page_path)
            d.execute_script("return document.fonts ? document.fonts.ready : null")
            height = d.execute_script(
                "return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)")
            d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                              {"width": width, "height": max(int(height), 200), "deviceScaleFactor": 1,
                               "mobile": mobile})
            d.execute_script("window.scrollTo(0, 0)")
            png = d.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
            with open(file, "wb") as f:
                f.write(base64.b64decode(png["data"]))
            overflow = d.execute_script("return document.documentElement.scrollWidth")
            return {"status": self.status, "page": self.page, "height": int(height),
                    "scroll_width": int(overflow)}
        finally:
            d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def wait_until(predicate, timeout: float = WAIT, interval: float = 0.1, message: str = ""):
    """Polls a condition outside the browser (e.g. a CHECK's answer) until it holds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s: {message}")
        time.sleep(interval)
