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
