"""Six screenshots for people (docs/console.md, docs/console/): the overview, the Production project and the
new-key form, as the Owner with the seeded data, 1280 px wide (desktop) and 390 px (a phone),
each the whole page's height. Written to $BROWSER_ARTIFACTS/screenshots."""

from __future__ import annotations

import json
import os

import pytest

from conftest import ARTIFACTS

SHOTS = [("overview", "overview"), ("project", "project:Production"), ("key-new", "key-new:Production")]
WIDTHS = [(1280, False), (390, True)]


@pytest.fixture(scope="module", autouse=True)
def as_owner(console, seed):
    console.sign_in(seed.users["owner"])


@pytest.mark.parametrize("width,mobile", WIDTHS, ids=[str(w) for w, _ in WIDTHS])
@pytest.mark.parametrize("name,page", SHOTS, ids=[s[0] for s in SHOTS])
def test_screenshot(name, page, width, mobile, console, urls, seed):
    d = os.path.join(ARTIFACTS, "screenshots")
    os.makedirs(d, exist_ok=True)
    file = os.path.join(d, f"{name}-{width}.png")
    info = console.screenshot(urls[page], file, width, mobile)
    assert (info["status"], info["page"]) == (200, name), (info, console.describe())
    assert os.path.getsize(file) > 5000, f"{file}: suspiciously small"
    with open(os.path.join(d, "sizes.jsonl"), "a") as f:  # for the record: height and overflow
        f.write(json.dumps({"file": os.path.basename(file), **info}) + "\n")
