// The console's stylesheet and script, served from /console/assets/ (the Content-Security-Policy
// allows scripts and styles from the console itself only, so nothing is inline).

enum Assets {
    static let css = #"""
    :root {
      --bg: #f6f7f9; --panel: #fff; --ink: #14171f; --muted: #5b6472; --line: #e3e6eb; --brand: #4338ca; --brand-ink: #fff;
      --ok: #047857; --ok-bg: #e7f6ef; --warn: #92400e; --warn-bg: #fdf3dc; --bad: #b42318; --bad-bg: #fdecea; --focus: #2563eb;
      --radius: 10px; --shadow: 0 1px 2px rgba(16,24,40,.06), 0 1px 3px rgba(16,24,40,.08);
      font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
      color: var(--ink); background: var(--bg); line-height: 1.5; font-size: 15px;
    }
    * { box-sizing: border-box; }
    body { margin: 0; }
    a { color: var(--brand); }
    code, .key { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .9em; }
    h1 { font-size: 1.6rem; margin: .1rem 0 .3rem; line-height: 1.25; }
    h2 { font-size: 1.1rem; margin: 0 0 .8rem; }
    h3 { font-size: 1rem; margin: 0; }
    :focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
    .skip { position: absolute; left: -999px; top: 0; background: var(--panel); padding: .5rem 1rem; z-index: 10; }
    .skip:focus { left: .5rem; }
    .sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
    .muted { color: var(--muted); }
    .small { font-size: .85rem; }
    .strong { font-weight: 600; }
    .num { font-variant-numeric: tabular-nums; }
    .big { font-size: 1.4rem; font-weight: 650; }

    .top { background: #111827; color: #e5e7eb; }
    .top-inner { max-width: 1200px; margin: 0 auto; padding: .6rem 1.25rem; display: flex; align-items: center; gap: 1.5rem; flex-wrap: wrap; }
    .brand { display: inline-flex; align-items: center; gap: .5rem; font-weight: 700; color: inherit; text-decoration: none; letter-spacing: .01em; }
    .brand-lg { font-size: 1.2rem; margin: 0 0 1rem; color: var(--ink); }
    .logo { display: inline-grid; place-items: center; width: 1.6rem; height: 1.6rem; border-radius: 6px; background: var(--brand); color: #fff; font-weight: 800; }
    .nav { display: flex; gap: .25rem; flex-wrap: wrap; }
    .nav a { color: #d1d5db; text-decoration: none; padding: .35rem .7rem; border-radius: 6px; }
    .nav a:hover { background: #1f2937; color: #fff; }
    .nav a[aria-current=page] { background: #374151; color: #fff; }
    .who { margin-left: auto; display: flex; align-items: center; gap: .75rem; flex-wrap: wrap; }
    .whoami { color: #9ca3af; font-size: .9rem; }
    .switcher summary { cursor: pointer; color: #d1d5db; font-size: .9rem; }
    .switcher ul { position: absolute; background: var(--panel); list-style: none; margin: .3rem 0 0; padding: .4rem; border-radius: 8px; box-shadow: var(--shadow); }
    .switcher a { display: block; padding: .3rem .6rem; color: var(--ink); text-decoration: none; }
    #sign-out { margin: 0; }

    .main { max-width: 1200px; margin: 0 auto; padding: 1.5rem 1.25rem 3rem; }
    .page-head { display: flex; align-items: flex-end; justify-content: space-between; gap: 1rem; flex-wrap: wrap; margin-bottom: 1.25rem; }
    .eyebrow { text-transform: uppercase; letter-spacing: .06em; font-size: .75rem; color: var(--muted); margin: 0; }
    .eyebrow a { color: inherit; }
    .section-head { display: flex; align-items: center; justify-content: space-between; margin: 1.5rem 0 .75rem; }
    section { margin-bottom: 1.25rem; }

    .panel, .card { background: var(--panel); border: 1px solid var(--line); border-radius: var(--radius); box-shadow: var(--shadow); padding: 1.1rem 1.25rem; }
    .cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 1rem; }
    .card-head { display: flex; justify-content: space-between; align-items: center; gap: .5rem; }
    .card-head a { color: var(--ink); text-decoration: none; }
    .card-head a:hover { text-decoration: underline; }
    .card p { margin: .25rem 0 .75rem; }
    .grid-2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); gap: 1.25rem; align-items: start; }
    .grid-2 > .panel { margin-bottom: 0; }
    .grid-2 + section, .grid-2 + .panel { margin-top: 1.25rem; }
    .narrow { max-width: 640px; margin: 2rem auto; }

    .facts { display: grid; grid-template-columns: repeat(auto-fit, minmax(110px, 1fr)); gap: .75rem; margin: 0 0 .9rem; }
    .facts dt { font-size: .75rem; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); }
    .facts dd { margin: .1rem 0 0; font-weight: 600; overflow-wrap: anywhere; }

    .budget { margin: .5rem 0; }
    .budget-label { display: flex; justify-content: space-between; font-size: .85rem; color: var(--muted); margin-bottom: .25rem; gap: .5rem; }
    progress { width: 100%; height: .55rem; appearance: none; border: 0; border-radius: 99px; background: #e9ecf1; overflow: hidden; display: block; }
    progress::-webkit-progress-bar { background: #e9ecf1; border-radius: 99px; }
    progress::-webkit-progress-value { background: var(--brand); border-radius: 99px; }
    progress::-moz-progress-bar { background: var(--brand); }
    progress.warn::-webkit-progress-value { background: #d97706; }
    progress.over::-webkit-progress-value { background: var(--bad); }

    .badge { display: inline-block; font-size: .75rem; font-weight: 600; padding: .12rem .5rem; border-radius: 99px; background: #eef0f4; color: #374151; vertical-align: middle; white-space: nowrap; }
    .badge-role { background: #eceafd; color: #3730a3; }
    .badge-ok { background: var(--ok-bg); color: var(--ok); }
    .badge-warn { background: var(--warn-bg); color: var(--warn); }
    .badge-muted { background: #f1f2f4; color: var(--muted); }
    .chip { display: inline-block; padding: .3rem .75rem; border: 1px solid var(--line); border-radius: 99px; background: var(--panel); text-decoration: none; color: var(--ink); font-size: .9rem; }
    .chip:hover { border-color: var(--brand); color: var(--brand); }
    .quick { display: flex; gap: .5rem; flex-wrap: wrap; margin-bottom: 1rem; }
    .empty { color: var(--muted); background: var(--panel); border: 1px dashed var(--line); border-radius: var(--radius); padding: 1rem; }

    .table-wrap { overflow-x: auto; -webkit-overflow-scrolling: touch; }
    table { width: 100%; border-collapse: collapse; font-size: .92rem; }
    th { text-align: left; font-size: .75rem; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); font-weight: 600; padding: .5rem .6rem; border-bottom: 1px solid var(--line); white-space: nowrap; }
    td { padding: .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
    tr:last-child td { border-bottom: 0; }
    td.num, th.num { text-align: right; white-space: nowrap; }
    td[data-label=Expires] { white-space: nowrap; }
    .models { display: flex; flex-wrap: wrap; gap: .3rem; font-weight: 500; }
    .model { white-space: nowrap; font-size: .85rem; background: #f1f2f4; border-radius: 6px; padding: .1rem .45rem; }
    .row-actions { text-align: right; white-space: nowrap; }
    .row-actions form { display: inline-flex; gap: .35rem; align-items: center; margin: 0 0 0 .35rem; }

    .form .field { display: flex; flex-direction: column; gap: .3rem; margin-bottom: .9rem; min-width: 0; }
    .field-row { display: grid; grid-template-columns: repeat(auto-fit, minmax(200px, 1fr)); gap: 0 1rem; }
    .form-inline-grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 0 .8rem; align-items: end; margin-top: 1rem; }
    .field-end { justify-content: flex-end; }
    label, legend { font-weight: 600; font-size: .88rem; }
    fieldset { border: 0; padding: 0; margin: 0 0 .9rem; }
    input, select, textarea { font: inherit; color: inherit; padding: .5rem .65rem; border: 1px solid #cfd4dc; border-radius: 8px; background: #fff; width: 100%; min-height: 2.5rem; }
    input[type=checkbox] { width: 1.1rem; height: 1.1rem; min-height: 0; margin: .15rem 0 0; accent-color: var(--brand); flex: none; }
    input[aria-invalid=true] { border-color: var(--bad); background: var(--bad-bg); }
    .hint { margin: 0; font-size: .82rem; color: var(--muted); }
    .checks { display: flex; flex-wrap: wrap; gap: .5rem; }
    .check { display: inline-flex; gap: .5rem; align-items: flex-start; font-weight: 500; border: 1px solid var(--line); border-radius: 8px; padding: .45rem .7rem; background: #fff; }
    .check-block { display: flex; margin-bottom: 1rem; }
    .form-actions { display: flex; justify-content: flex-end; gap: .6rem; border-top: 1px solid var(--line); padding-top: 1rem; margin-top: .5rem; }
    .key-form { max-width: 760px; }
    #key-owner { margin: 0 0 1rem; }
    .inline { display: inline-flex; gap: .35rem; align-items: center; margin: 0; }
    .inline select { width: auto; min-height: 2rem; padding: .2rem .4rem; }
    .danger-zone { margin-top: 1rem; border-top: 1px solid var(--line); padding-top: .8rem; }
    details.create { margin-top: 1rem; }
    details.create summary { cursor: pointer; font-weight: 600; color: var(--brand); }
    details.create form { margin-top: 1rem; }

    .btn { display: inline-flex; align-items: center; justify-content: center; gap: .35rem; font: inherit; font-weight: 600; font-size: .92rem; padding: .5rem .95rem; border-radius: 8px; border: 1px solid #cfd4dc; background: #fff; color: var(--ink); text-decoration: none; cursor: pointer; min-height: 2.4rem; }
    .btn:hover { background: #f3f4f6; }
    .btn-primary { background: var(--brand); border-color: var(--brand); color: var(--brand-ink); }
    .btn-primary:hover { background: #3730a3; }
    .btn-danger { background: var(--bad); border-color: var(--bad); color: #fff; }
    .btn-danger:hover { background: #912018; }
    .btn-danger-ghost { color: var(--bad); border-color: #f1c4bf; }
    .btn-danger-ghost:hover { background: var(--bad-bg); }
    .btn-ghost { background: transparent; border-color: transparent; color: inherit; }
    .top .btn-ghost { color: #d1d5db; border-color: #374151; }
    .top .btn-ghost:hover { background: #1f2937; }
    .btn-sm { padding: .25rem .6rem; font-size: .82rem; min-height: 2rem; }
    .btn-block { width: 100%; }

    .alert { border-radius: 8px; padding: .7rem .9rem; margin-bottom: 1rem; }
    .alert-error { background: var(--bad-bg); color: var(--bad); border: 1px solid #f5c2bd; }
    .auth { min-height: 80vh; display: grid; place-items: center; }
    .auth-card { width: min(440px, 100%); padding: 2rem; }
    .secret { display: flex; gap: .6rem; align-items: stretch; margin: 1rem 0 .3rem; flex-wrap: wrap; }
    .secret code { flex: 1 1 260px; background: #0f172a; color: #e2e8f0; padding: .75rem .9rem; border-radius: 8px; overflow-wrap: anywhere; user-select: all; }
    .success-panel { border-top: 4px solid var(--ok); }
    .error-panel { border-top: 4px solid var(--bad); }
    .item-list { list-style: none; padding: 0; margin: 0 0 1rem; }
    .item-list li { display: flex; justify-content: space-between; align-items: center; gap: .5rem; padding: .5rem 0; border-bottom: 1px solid var(--line); flex-wrap: wrap; }
    .spend-list { list-style: none; padding: 0; margin: .5rem 0 1rem; display: grid; gap: .6rem; }

    @media (max-width: 640px) {
      :root { font-size: 14px; }
      .main { padding: 1rem .8rem 2rem; }
      .top-inner { gap: .6rem; padding: .6rem .8rem; }
      .who { margin-left: 0; width: 100%; justify-content: space-between; }
      h1 { font-size: 1.35rem; }
      .panel, .card { padding: .9rem; }
      .page-head .btn { width: 100%; }
      .form-actions { flex-direction: column-reverse; }
      .form-actions .btn { width: 100%; }
      /* Key and member tables become one card per row. */
      .cards-sm thead { display: none; }
      .cards-sm tr { display: grid; grid-template-columns: 1fr 1fr; gap: .2rem .8rem; padding: .7rem 0; border-bottom: 1px solid var(--line); }
      .cards-sm td { border: 0; padding: .1rem 0; }
      .cards-sm td:first-child { grid-column: 1 / -1; }
      .cards-sm td[data-label]::before {
        content: attr(data-label); display: block; font-size: .7rem; text-transform: uppercase; letter-spacing: .05em; color: var(--muted);
      }
      td.num { text-align: left; }
      .row-actions { text-align: left; grid-column: 1 / -1; }
      .row-actions form { margin: .3rem .35rem 0 0; }
    }
    """#

    static let js = #"""
    // bursar console: small progressive enhancements; every page works without them.
    (function () {
      "use strict";

      // "12.50" dollars as nano-USD, exactly (BigInt; no floating point on money).
      function nanoUSD(text) {
        var m = /^\s*\$?(\d*)(?:\.(\d{0,9}))?\s*$/.exec(text);
        if (!m || (m[1] === "" && (m[2] === undefined || m[2] === ""))) return null;
        var frac = (m[2] || "").padEnd(9, "0");
        return BigInt(m[1] || "0") * 1000000000n + BigInt(frac);
      }
      // "20k" / "1m" / "600" as a count.
      function count(text) {
        var m = /^\s*(\d+)\s*([kKmM]?)\s*$/.exec(text.replace(/_/g, ""));
        if (!m) return null;
        var mult = { "": 1n, k: 1000n, K: 1000n, m: 1000000n, M: 1000000n }[m[2]];
        return BigInt(m[1]) * mult;
      }

      // Fields with data-max are checked against their cap before the form is sent; the message
      // names the cap (e.g. project.tpm), as the server's refusal does.
      function capProblem(input) {
        var text = input.value.trim();
        if (text === "") return null;
        var value = input.dataset.kind === "money" ? nanoUSD(text) : count(text);
        if (value === null) return null; // the server names a malformed value
        if (value > BigInt(input.dataset.max)) {
          return input.dataset.label + " " + text + " exceeds the cap " + input.dataset.cap + " (" +
            document.getElementById(input.id + "-hint").textContent + ")";
        }
        return null;
      }

      function checkForm(form) {
        var box = form.querySelector("[data-testid=cap-error]");
        var problems = [];
        form.querySelectorAll("input[data-max]").forEach(function (input) {
          var p = capProblem(input);
          input.setAttribute("aria-invalid", p ? "true" : "false");
          if (p) problems.push({ text: p, cap: input.dataset.cap, input: input });
        });
        if (!box) return problems.length === 0;
        if (problems.length) {
          box.textContent = problems.map(function (p) { return p.text; }).join(" ");
          box.dataset.cap = problems[0].cap;
          box.hidden = false;
        } else {
          box.textContent = "";
          box.hidden = true;
          delete box.dataset.cap;
        }
        return problems.length === 0 ? true : problems[0].input;
      }

      document.addEventListener("DOMContentLoaded", function () {
        document.querySelectorAll("form").forEach(function (form) {
          if (!form.querySelector("input[data-max]")) return;
          form.addEventListener("input", function () { checkForm(form); });
          form.addEventListener("submit", function (event) {
            var ok = checkForm(form);
            if (ok !== true) {
              event.preventDefault();
              if (ok && ok.focus) ok.focus();
            }
          });
        });

        document.querySelectorAll("[data-copy]").forEach(function (button) {
          button.addEventListener("click", function () {
            var text = document.getElementById(button.dataset.copy).textContent;
            var status = document.getElementById("copy-status");
            var done = function () { if (status) status.textContent = "Copied to the clipboard."; button.textContent = "Copied"; };
            if (navigator.clipboard && navigator.clipboard.writeText) {
              navigator.clipboard.writeText(text).then(done, function () { if (status) status.textContent = "Select the secret and copy it."; });
            } else {
              var range = document.createRange();
              range.selectNodeContents(document.getElementById(button.dataset.copy));
              var sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
              try { document.execCommand("copy"); done(); } catch (e) { if (status) status.textContent = "Select the secret and copy it."; }
            }
          });
        });
      });
    })();
    """#
}
