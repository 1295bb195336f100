#!/usr/bin/env bash
# Checks the Markdown documentation's relative links, offline (no link is fetched), in
# README.md, docs/**/*.md, proto/SPEC.md, clients/python/README.md and Tests/browser/README.md:
#   - every relative link and image ([text](target), ![alt](target), [id]: target, and href/src
#     in inline HTML) names a file or directory that exists, relative to the page it is in;
#   - a link with an anchor (page.md#anchor, or #anchor within the page) names a heading of that
#     page, by GitHub's rule: the heading's text, lower case, punctuation other than '-' and '_'
#     removed, spaces as '-'; a repeated heading gets -1, -2, … (explicit id="…"/name="…" count);
#   - every page under docs/ is linked from README.md or docs/README.md (docs/README.md from
#     README.md), so a reader reaches it from the front page.
# Links inside code (fenced blocks, `spans`) are not links. http:, https:, mailto: and other
# schemes are skipped. Prints each broken link as `file:line: target (why)` and exits 1 if there
# is any; otherwise prints one summary line and exits 0.
#
#   deploy/check-links.sh                 the files above, from the repository this script is in
#   deploy/check-links.sh FILE.md …       those files instead (the docs/ reachability check still runs)
set -euo pipefail
cd "$(dirname "$0")/.."
# On a fresh machine python3 may be missing still; deploy/install-deps.sh, which deploy/test.sh runs
# next anyway, installs it.
command -v python3 >/dev/null || bash deploy/install-deps.sh
exec python3 - "$@" <<'PY'
import glob, os, re, sys, unicodedata
from urllib.parse import unquote

DEFAULT = ["README.md", *sorted(glob.glob("docs/**/*.md", recursive=True)), "proto/SPEC.md",
           "clients/python/README.md", "Tests/browser/README.md"]
files = sys.argv[1:] or [f for f in DEFAULT if os.path.isfile(f)]

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
CODE_SPAN = re.compile(r"(`+)((?:(?!\n[ \t]*\n).)+?)(?<!`)\1(?!`)", re.S)
INLINE = re.compile(r"""(!?)\[((?:[^\[\]\\]|\\.|\[(?:[^\[\]\\]|\\.)*\])*)\]\(\s*(<[^<>\n]*>|(?:[^\s()\\]|\\.|\((?:[^\s()\\]|\\.)*\))*)(?:\s+(?:"[^"]*"|'[^']*'|\([^)]*\)))?\s*\)""", re.S)
REFDEF = re.compile(r"^ {0,3}\[((?:[^\]\\]|\\.)+)\]:\s*(<[^>]*>|\S+)", re.M)
HTML_ATTR = re.compile(r"""<(?:a|img|source)\b[^>]*?\b(?:href|src)\s*=\s*("[^"]*"|'[^']*')""", re.I)
HTML_ID = re.compile(r"""<[a-z][^>]*?\b(?:id|name)\s*=\s*("[^"]*"|'[^']*')""", re.I)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")

def blank(text, start, end):
    """text with [start, end) replaced by spaces, newlines kept, so offsets and lines stay."""
    return text[:start] + re.sub(r"[^\n]", " ", text[start:end]) + text[end:]

def strip_fences(text):
    """The text with fenced code blocks blanked out."""
    out, fence = [], None
    for line in text.split("\n"):
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
            out.append(" " * len(line))
        elif fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line.strip()[len(m.group(1)):].strip():
                fence = None
            out.append(" " * len(line))
        else:
            out.append(line)
    return "\n".join(out)

def strip_code_spans(text):
    for m in reversed(list(CODE_SPAN.finditer(text))):
        text = blank(text, m.start(), m.end())
    return text

def heading_text_to_slug(text):
    # What GitHub renders: code spans keep their content, links their text, emphasis and HTML go.
    text = re.sub(r"`+([^`]*)`+", r"\1", text)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"(\*+|(?<!\w)_+|_+(?!\w))", "", text)
    text = text.strip().lower()
    kept = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in "-_" or ch == " " or cat[0] in "LNM":
            kept.append(ch)
    return "".join(kept).replace(" ", "-")

anchor_cache = {}
def anchors(path):
    if path in anchor_cache:
        return anchor_cache[path]
    with open(path, encoding="utf-8") as f:
        text = strip_fences(f.read())
    lines = text.split("\n")
    seen, result = {}, set()
    for i, line in enumerate(lines):
        title = None
        m = ATX.match(line)
        if m:
            title = m.group(2) or ""
        elif i > 0 and SETEXT.match(line) and lines[i - 1].strip() and not ATX.match(lines[i - 1]) \
                and not lines[i - 1].lstrip().startswith(("|", "-", "*", ">")) and "|" not in line:
            title = lines[i - 1].strip()
        if title is None:
            continue
        slug = heading_text_to_slug(title)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        result.add(slug if n == 0 else f"{slug}-{n}")
    for m in HTML_ID.finditer(text):
        result.add(m.group(1)[1:-1])
    anchor_cache[path] = result
    return result

def links(path):
    """(line, target) of every link and image in the file, outside code."""
    with open(path, encoding="utf-8") as f:
        text = strip_code_spans(strip_fences(f.read()))
    found = []
    def line_of(offset):
        return text.count("\n", 0, offset) + 1
    for m in INLINE.finditer(text):
        target = m.group(3)
        if target.startswith("<"):
            target = target[1:-1]
        found.append((line_of(m.start(3)), target))
    for m in REFDEF.finditer(text):
        target = m.group(2)
        if target.startswith("<"):
            target = target[1:-1]
        found.append((line_of(m.start(2)), target))
    for m in HTML_ATTR.finditer(text):
        found.append((line_of(m.start(1)), m.group(1)[1:-1]))
    return sorted(found)

def resolve(page, target):
    """(destination path, anchor, None) for a relative link, or (None, None, why) if it leaves the repository."""
    target = re.sub(r"\\(.)", r"\1", target)
    path_part, _, anchor = target.partition("#")
    path_part = unquote(path_part.split("?", 1)[0])
    if path_part:
        base = "." if path_part.startswith("/") else os.path.dirname(page)
        dest = os.path.normpath(os.path.join(base, path_part.lstrip("/")))
    else:
        dest = os.path.normpath(page)
    if dest == ".." or dest.startswith("../"):
        return None, None, "outside the repository"
    return dest, unquote(anchor), None

def relative(target):
    return bool(target) and not SCHEME.match(target) and not target.startswith("//")

problems, checked = [], 0
for page in files:
    if not os.path.isfile(page):
        problems.append(f"{page}:0: {page} (no such file to check)")
        continue
    for line, target in links(page):
        if not relative(target):
            continue
        checked += 1
        dest, anchor, why = resolve(page, target)
        if why:
            problems.append(f"{page}:{line}: {target} ({why})")
        elif not os.path.exists(dest):
            problems.append(f"{page}:{line}: {target} (no such file: {dest})")
        elif anchor and os.path.isfile(dest) and dest.lower().endswith((".md", ".markdown")):
            # (anchors into code, #L10, or into directories are GitHub's own, not headings)
            if anchor not in anchors(dest):
                problems.append(f"{page}:{line}: {target} (no heading with anchor #{anchor} in {dest})")

# Every page under docs/ is reachable from the front page: docs/README.md from README.md, every
# other page from README.md or docs/README.md.
def targets_of(page):
    if not os.path.isfile(page):
        return set()
    return {resolve(page, t)[0] for _, t in links(page) if relative(t)}
front, index = targets_of("README.md"), targets_of("docs/README.md")
for doc in sorted(os.path.normpath(d) for d in glob.glob("docs/**/*.md", recursive=True)):
    if doc == os.path.normpath("docs/README.md"):
        if doc not in front:
            problems.append(f"{doc}:1: {doc} (not linked from README.md)")
    elif doc not in front and doc not in index:
        problems.append(f"{doc}:1: {doc} (not linked from README.md or docs/README.md)")

for p in problems:
    print(p)
if problems:
    print(f"check-links: {len(problems)} problem(s): broken links among {checked} relative links in {len(files)} files, or docs/ pages nothing links", file=sys.stderr)
    sys.exit(1)
docs_pages = len(glob.glob("docs/**/*.md", recursive=True))
print(f"check-links: {checked} relative links in {len(files)} files resolve; all {docs_pages} docs/ pages are linked from README.md or docs/README.md")
PY
