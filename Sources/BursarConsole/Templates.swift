// The console's Mustache templates (swift-mustache), compiled into bursard so a deployment is one
// binary. `{{…}}` escapes HTML; `{{{body}}}` (the layout's slot for a rendered page) is the only
// unescaped value. Elements an action of the permission matrix gates carry `data-action` with the
// action's name (proto/permissions.tsv); the browser tests find them by it.

enum Templates {
    static let all: [(String, String)] = [
        ("layout", layout), ("budget", budget), ("csrf", csrf), ("secret", secret), ("key-table", keyTable), ("key-rows", keyRows),
        ("sign-in", signIn), ("link", link), ("error", error), ("overview", overview), ("project", project),
        ("key-new", keyNew), ("key-created", keyCreated), ("organization", organization), ("invited", invited), ("audit", audit),
        ("accept", accept), ("accepted", accepted),
    ]

    static let layout = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>{{title}} · bursar</title>
    <link rel="stylesheet" href="/console/assets/console.css">
    <script src="/console/assets/console.js" defer></script>
    </head>
    <body data-page="{{page}}"{{#errorCode}} data-error="{{errorCode}}"{{/errorCode}}>
    <a class="skip" href="#main">Skip to content</a>
    {{#chrome}}
    <header class="top">
      <div class="top-inner">
        <a class="brand" href="/console"><span class="logo" aria-hidden="true">b</span>bursar</a>
        {{#org}}
        <nav class="nav" aria-label="Main">
          <a data-nav="overview" href="/console/o/{{id}}"{{#navOverview}} aria-current="page"{{/navOverview}}>Overview</a>
          {{#owner}}
          <a data-nav="organization" href="/console/o/{{id}}/organization"{{#navOrganization}} aria-current="page"{{/navOrganization}}>Organization</a>
          <a data-nav="audit" href="/console/o/{{id}}/audit"{{#navAudit}} aria-current="page"{{/navAudit}}>Audit log</a>
          {{/owner}}
        </nav>
        {{/org}}
        <div class="who">
          {{#manyOrgs}}
          <details class="switcher">
            <summary>Switch organization</summary>
            <ul>{{#orgs}}<li><a href="/console/o/{{id}}"{{#current}} aria-current="true"{{/current}}>{{name}}</a></li>{{/orgs}}</ul>
          </details>
          {{/manyOrgs}}
          <span class="whoami" data-testid="whoami">{{email}}</span>
          <form id="sign-out" method="post" action="/console/sign-out">
            <input type="hidden" name="_csrf" value="{{csrf}}">
            <button type="submit" class="btn btn-ghost btn-sm">Sign out</button>
          </form>
        </div>
      </div>
    </header>
    {{/chrome}}
    <main id="main" class="main">
    {{{body}}}
    </main>
    </body>
    </html>
    """#

    static let csrf = #"""
    <input type="hidden" name="_csrf" value="{{csrf}}">
    """#

    /// A secret shown once (a key's, or an invited user's token) with its copy button.
    static let secret = #"""
    <div class="secret">
      <code id="secret">{{secret}}</code>
      <button id="copy-secret" type="button" class="btn btn-primary" data-copy="secret">Copy</button>
    </div>
    <p class="muted small" role="status" id="copy-status" aria-live="polite"></p>
    """#

    static let budget = #"""
    <div class="budget">
      <div class="budget-label"><span>Monthly budget</span><span class="num">{{text}}</span></div>
      {{#has}}<progress data-testid="budget" class="{{#warn}}warn{{/warn}}{{#over}} over{{/over}}" value="{{value}}" max="{{max}}" aria-label="Monthly budget used: {{percent}}%">{{percent}}%</progress>{{/has}}
      {{^has}}<progress data-testid="budget" value="0" max="1" aria-label="No monthly budget set">no budget</progress>{{/has}}
    </div>
    """#

    /// The key table of the overview (`my-keys`), the project page (`keys`) and the organization
    /// page (`all-keys`): the page's context sets `tableId`, `showProject` and `showUser`.
    static let keyTable = #"""
    <div class="table-wrap">
      <table id="{{tableId}}" class="cards-sm">
        <thead><tr><th scope="col">Key</th>{{#showProject}}<th scope="col">Project</th>{{/showProject}}{{#showUser}}<th scope="col">User</th>{{/showUser}}<th scope="col">Limits</th><th scope="col" class="num">This minute</th><th scope="col" class="num">Spend</th><th scope="col">Expires</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
        <tbody>{{>key-rows}}</tbody>
      </table>
    </div>
    """#

    /// Key rows, shared by the overview, the project page and the organization page.
    static let keyRows = #"""
    {{#keys}}
    <tr data-key-id="{{id}}" data-key-user="{{user}}">
      <td><div class="strong">{{name}}</div><code class="key">{{display}}</code>{{#noLogging}} <span class="badge badge-muted" title="Content logging disabled">no logging</span>{{/noLogging}}</td>
      {{#project}}<td data-label="Project">{{project}}</td>{{/project}}
      {{#owner}}<td data-label="User">{{owner}}</td>{{/owner}}
      <td data-label="Limits">{{limits}}</td>
      <td class="num" data-label="This minute">{{requests}} req<div class="muted">{{tokens}} tok</div></td>
      <td class="num" data-label="Spend">{{spend}}<div class="muted">{{period}}</div></td>
      <td data-label="Expires"><span title="{{expiryTitle}}">{{expiry}}</span></td>
      <td class="row-actions">
        {{#active}}
        <form method="post" action="/console/o/{{orgId}}/keys/{{id}}/revoke" data-revoke="{{id}}">
          <input type="hidden" name="_csrf" value="{{csrf}}"><input type="hidden" name="back" value="{{back}}">
          <button type="submit" class="btn btn-danger btn-sm" aria-label="Revoke key {{name}}">Revoke</button>
        </form>
        {{/active}}
        {{^active}}<span class="badge badge-muted">{{status}}</span>{{/active}}
      </td>
    </tr>
    {{/keys}}
    """#

    static let signIn = #"""
    <div class="auth">
      <div class="auth-card panel">
        <p class="brand brand-lg"><span class="logo" aria-hidden="true">b</span>bursar</p>
        <h1>Sign in</h1>
        <p class="muted">Use your personal access token (the one <code>bursarctl</code> printed when you were invited), or run <code>bursarctl console-link</code> for a one-time link.</p>
        {{#error}}<div class="alert alert-error" role="alert" data-testid="form-error">{{error}}</div>{{/error}}
        <form id="sign-in" method="post" action="/console/sign-in" class="form">
          <input type="hidden" name="_csrf" value="{{csrf}}">
          <input type="hidden" name="next" value="{{next}}">
          <div class="field">
            <label for="token">Personal access token</label>
            <input id="token" name="token" type="password" autocomplete="current-password" required autofocus spellcheck="false">
          </div>
          <button type="submit" class="btn btn-primary btn-block">Sign in</button>
        </form>
      </div>
    </div>
    """#

    static let link = #"""
    <div class="auth">
      <div class="auth-card panel">
        <p class="brand brand-lg"><span class="logo" aria-hidden="true">b</span>bursar</p>
        <h1>Continue as {{email}}?</h1>
        <p class="muted">This one-time link signs you in to the console. It works once.</p>
        <form id="link" method="post" action="/console/link/{{code}}" class="form">
          <input type="hidden" name="_csrf" value="{{csrf}}">
          <button type="submit" class="btn btn-primary btn-block">Continue</button>
        </form>
      </div>
    </div>
    """#

    static let accept = #"""
    <div class="auth">
      <div class="auth-card panel">
        <p class="brand brand-lg"><span class="logo" aria-hidden="true">b</span>bursar</p>
        <h1>Accept an invitation</h1>
        <p class="muted">Paste the acceptance token you were given. New to bursar? That is all: you get your own personal access token. Already use bursar? Add your personal access token too, so the invitation joins your account.</p>
        {{#error}}<div class="alert alert-error" role="alert" data-testid="form-error">{{error}}</div>{{/error}}
        <form id="accept" method="post" action="/console/invitation" class="form">
          <input type="hidden" name="_csrf" value="{{csrf}}">
          <div class="field">
            <label for="invitation">Acceptance token</label>
            <input id="invitation" name="invitation" type="password" autocomplete="off" required autofocus spellcheck="false">
          </div>
          <div class="field">
            <label for="token">Your personal access token (if you already use bursar)</label>
            <input id="token" name="token" type="password" autocomplete="current-password" spellcheck="false">
          </div>
          <button type="submit" class="btn btn-primary btn-block">Accept</button>
        </form>
      </div>
    </div>
    """#

    static let accepted = #"""
    <div class="narrow">
      <div class="panel success-panel">
        <p class="eyebrow">Welcome to {{orgName}}</p>
        <h1>{{email}}</h1>
        <p>Your personal access token, <strong>shown only this once</strong>: store it now. You sign in with it, and <code>bursarctl</code> uses it (<code>BURSAR_TOKEN</code>).</p>
        {{>secret}}
        <a class="btn btn-primary" href="/console/o/{{orgId}}">Continue</a>
      </div>
    </div>
    """#

    static let error = #"""
    <div class="narrow">
      <div class="panel error-panel">
        <p class="eyebrow">Error {{status}}</p>
        <h1>{{heading}}</h1>
        <p data-testid="error-message">{{message}}</p>
        <p>{{#home}}<a class="btn" href="/console">Back to the overview</a>{{/home}}{{^home}}<a class="btn" href="/console/sign-in">Sign in</a>{{/home}}</p>
      </div>
    </div>
    """#

    static let overview = #"""
    <div class="page-head">
      <div>
        <p class="eyebrow">Organization</p>
        <h1>{{orgName}} <span class="badge badge-role" data-testid="org-role">{{orgRole}}</span></h1>
      </div>
    </div>

    {{#hasOrgLinks}}
    <nav class="quick" aria-label="Organization settings">
      {{#orgLinks}}<a class="chip" data-action="{{action}}" href="/console/o/{{orgId}}/organization#{{action}}">{{label}}</a>{{/orgLinks}}
    </nav>
    {{/hasOrgLinks}}

    <section aria-labelledby="projects-h">
      <div class="section-head"><h2 id="projects-h">Projects</h2></div>
      {{#noProjects}}<p class="empty">You are not in any project of this organization yet. An Owner or a Project Admin can add you.</p>{{/noProjects}}
      <div class="cards">
        {{#projects}}
        <article class="card" data-project-id="{{id}}">
          <div class="card-head">
            <h3><a href="/console/o/{{orgId}}/p/{{id}}">{{name}}</a></h3>
            <span class="badge badge-role" data-testid="project-role">{{role}}</span>
          </div>
          <p class="muted"><span data-testid="key-count">{{keyCount}}</span> · {{budgetText}} budget{{^active}} · <span class="badge badge-muted">{{status}}</span>{{/active}}</p>
          <dl class="facts">
            <div><dt>Models</dt><dd title="{{models}}">{{modelsShort}}</dd></div>
            <div><dt>Tokens / min</dt><dd class="num">{{tpm}}</dd></div>
            <div><dt>Requests / min</dt><dd class="num">{{rpm}}</dd></div>
          </dl>
          {{#budget}}{{>budget}}{{/budget}}
        </article>
        {{/projects}}
      </div>
      {{#can.create_project}}
      <details class="panel create">
        <summary>New project</summary>
        <form method="post" action="/console/o/{{orgId}}/projects" class="form" data-action="create_project">
          {{>csrf}}
          <div class="field-row">
            <div class="field"><label for="np-name">Name</label><input id="np-name" name="name" required></div>
            <div class="field"><label for="np-budget">Monthly budget ($)</label><input id="np-budget" name="budget" inputmode="decimal" placeholder="No budget"></div>
          </div>
          <div class="field"><label for="np-models">Models</label><input id="np-models" name="models" placeholder="Comma-separated; empty = all models"></div>
          <div class="field-row">
            <div class="field"><label for="np-tpm">Tokens / min</label><input id="np-tpm" name="tpm" inputmode="numeric" placeholder="No limit"></div>
            <div class="field"><label for="np-rpm">Requests / min</label><input id="np-rpm" name="rpm" inputmode="numeric" placeholder="No limit"></div>
          </div>
          <button type="submit" class="btn btn-primary">Create project</button>
        </form>
      </details>
      {{/can.create_project}}
    </section>

    <section aria-labelledby="keys-h">
      <div class="section-head"><h2 id="keys-h">Your API keys</h2></div>
      {{#noKeys}}<p class="empty">You have no keys here yet. Open a project to create one.</p>{{/noKeys}}
      {{^noKeys}}
      <div class="panel">
      {{>key-table}}
      </div>
      {{/noKeys}}
    </section>
    """#

    static let project = #"""
    <div class="page-head">
      <div>
        <p class="eyebrow"><a href="/console/o/{{orgId}}">Overview</a> / Project</p>
        <h1>{{name}} <span class="badge {{#active}}badge-ok{{/active}}{{^active}}badge-muted{{/active}}">{{status}}</span></h1>
        <p class="muted">Your role: <span data-testid="project-role">{{roleLabel}}</span></p>
      </div>
      {{#can.create_and_manage_own_keys}}
      <a class="btn btn-primary" data-action="create_and_manage_own_keys" href="/console/o/{{orgId}}/p/{{id}}/keys/new">New user API key</a>
      {{/can.create_and_manage_own_keys}}
    </div>

    <div class="grid-2">
      <section class="panel" data-testid="guardrails" aria-labelledby="guard-h">
        <h2 id="guard-h">Guardrails</h2>
        <dl class="facts">
          <div><dt>Tokens / min</dt><dd class="num">{{tpm}}</dd></div>
          <div><dt>Requests / min</dt><dd class="num">{{rpm}}</dd></div>
        </dl>
        <dl class="facts"><div><dt>Models</dt><dd class="models">{{#allModels}}All models{{/allModels}}{{#modelChips}}<span class="model">{{.}}</span>{{/modelChips}}</dd></div></dl>
        {{#budget}}{{>budget}}{{/budget}}
        <p class="muted small">This minute: {{minuteRequests}} requests · {{minuteTokens}} tokens · {{reserved}}</p>
        <h3>Prices <span class="muted small">per million tokens</span></h3>
        {{^hasPrices}}<p class="muted small" data-testid="no-prices">No prices for this project's models.</p>{{/hasPrices}}
        {{#hasPrices}}<table class="table" data-testid="project-prices"><thead><tr><th>Model</th><th class="num">Input</th><th class="num">Output</th><th class="num">Cached input</th></tr></thead><tbody>{{/hasPrices}}
          {{#prices}}<tr data-price-model="{{model}}"><td class="strong">{{model}}</td><td class="num">{{input}}</td><td class="num">{{output}}</td><td class="num">{{cached}}</td></tr>{{/prices}}
        {{#hasPrices}}</tbody></table>{{/hasPrices}}
        {{#can.delete_project}}
        <form method="post" action="/console/o/{{orgId}}/p/{{id}}/delete" data-action="delete_project" class="danger-zone">
          {{>csrf}}
          <button type="submit" class="btn btn-danger-ghost btn-sm">Delete project</button>
        </form>
        {{/can.delete_project}}
      </section>

      {{#can.edit_project_settings}}
      <section class="panel" aria-labelledby="edit-h">
        <h2 id="edit-h">Edit guardrails</h2>
        <form method="post" action="/console/o/{{orgId}}/p/{{id}}/settings" data-action="edit_project_settings" class="form">
          {{>csrf}}
          <div class="field"><label for="ps-models">Accessible models</label><textarea id="ps-models" name="models" rows="2" placeholder="Comma-separated; empty = all models">{{modelsList}}</textarea></div>
          <div class="field-row">
            <div class="field"><label for="ps-tpm">Tokens / min</label><input id="ps-tpm" name="tpm" inputmode="numeric" value="{{tpmValue}}" placeholder="No limit"></div>
            <div class="field"><label for="ps-rpm">Requests / min</label><input id="ps-rpm" name="rpm" inputmode="numeric" value="{{rpmValue}}" placeholder="No limit"></div>
          </div>
          <div class="field"><label for="ps-budget">Monthly budget ($)</label><input id="ps-budget" name="budget" inputmode="decimal" value="{{budgetValue}}" placeholder="No budget"></div>
          <button type="submit" class="btn btn-primary">Save guardrails</button>
        </form>
      </section>
      {{/can.edit_project_settings}}
    </div>

    {{#can.view_project_members}}
    <section class="panel" aria-labelledby="members-h">
      <h2 id="members-h">Members</h2>
      <div class="table-wrap">
        <table data-action="view_project_members" id="members" class="cards-sm">
          <thead><tr><th scope="col">Member</th><th scope="col">Role</th><th scope="col">Grant</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
          <tbody>
          {{#members}}
          <tr data-member-id="{{id}}">
            <td><div class="strong">{{name}}</div><div class="muted">{{email}}</div></td>
            <td data-label="Role">{{role}}</td>
            <td class="small" data-label="Grant">{{grant}}</td>
            <td class="row-actions">
              {{#editable}}{{#can.edit_member_roles}}
              <form method="post" action="/console/o/{{orgId}}/p/{{projectId}}/members/{{id}}/role" data-action="edit_member_roles" class="inline">
                {{>csrf}}
                <label class="sr-only" for="role-{{id}}">Project role of {{email}}</label>
                <select id="role-{{id}}" name="role"><option value="admin"{{#isAdmin}} selected{{/isAdmin}}>Project Admin</option><option value="member"{{^isAdmin}} selected{{/isAdmin}}>Project Member</option></select>
                <button type="submit" class="btn btn-sm">Save</button>
              </form>
              <form method="post" action="/console/o/{{orgId}}/p/{{projectId}}/members/{{id}}/remove" class="inline">
                {{>csrf}}
                <button type="submit" class="btn btn-danger-ghost btn-sm" aria-label="Remove {{email}} from the project">Remove</button>
              </form>
              {{/can.edit_member_roles}}{{/editable}}
            </td>
          </tr>
          {{/members}}
          </tbody>
        </table>
      </div>
      {{#can.add_project_members}}
      <form method="post" action="/console/o/{{orgId}}/p/{{id}}/members" data-action="add_project_members" class="form form-inline-grid">
        {{>csrf}}
        <div class="field"><label for="am-email">Add a member by e-mail</label><input id="am-email" name="email" type="email" required placeholder="teammate@company.com"></div>
        <div class="field"><label for="am-role">Role</label><select id="am-role" name="role"><option value="member">Project Member</option><option value="admin">Project Admin</option></select></div>
        <div class="field"><label for="am-models">Grant: models</label><input id="am-models" name="grant_models" placeholder="Project's models"></div>
        <div class="field"><label for="am-spend">Grant: max key spend ($)</label><input id="am-spend" name="grant_spend" inputmode="decimal" placeholder="Project's budget"></div>
        <div class="field"><label for="am-tpm">Grant: TPM</label><input id="am-tpm" name="grant_tpm" inputmode="numeric" placeholder="Project's"></div>
        <div class="field"><label for="am-rpm">Grant: RPM</label><input id="am-rpm" name="grant_rpm" inputmode="numeric" placeholder="Project's"></div>
        <div class="field field-end"><button type="submit" class="btn btn-primary">Add member</button></div>
      </form>
      {{/can.add_project_members}}
    </section>
    {{/can.view_project_members}}

    <section class="panel" aria-labelledby="keys-h">
      <h2 id="keys-h">{{#allKeys}}<span data-action="manage_all_keys_in_project">All keys of this project</span>{{/allKeys}}{{^allKeys}}Your keys in this project{{/allKeys}}</h2>
      {{#noKeys}}<p class="empty">No keys yet.</p>{{/noKeys}}
      {{^noKeys}}
      {{>key-table}}
      {{/noKeys}}
    </section>
    """#

    static let keyNew = #"""
    <div class="page-head">
      <div>
        <p class="eyebrow"><a href="/console/o/{{orgId}}/p/{{projectId}}">{{projectName}}</a> / New key</p>
        <h1>New user API key</h1>
        <p class="muted">For {{forWhom}} in {{projectName}}. Every limit stays within the project's caps and the key user's grant.</p>
      </div>
    </div>
    {{#hasKeyOwners}}
    <form method="get" action="/console/o/{{orgId}}/p/{{projectId}}/keys/new" class="panel form form-inline-grid key-form" id="key-owner" data-action="manage_all_keys_in_project">
      <div class="field"><label for="user">Key for</label>
        <select id="user" name="user">{{#keyOwners}}<option value="{{id}}"{{#selected}} selected{{/selected}}>{{label}}</option>{{/keyOwners}}</select></div>
      <div class="field field-end"><button type="submit" class="btn">Show their caps</button></div>
    </form>
    {{/hasKeyOwners}}
    <form id="new-key" class="panel form key-form" method="post" action="/console/o/{{orgId}}/p/{{projectId}}/keys">
      {{>csrf}}
      {{#forUser}}<input type="hidden" name="user_id" value="{{forUser}}">{{/forUser}}
      {{#error}}<div class="alert alert-error" role="alert" data-testid="form-error" data-cap="{{cap}}" data-field="{{field}}">{{message}}</div>{{/error}}
      <div class="alert alert-error" role="alert" data-testid="cap-error" hidden></div>

      <div class="field">
        <label for="name">Name</label>
        <input id="name" name="name" required maxlength="200" value="{{name}}" placeholder="e.g. billing-service" autocomplete="off">
      </div>

      <div class="field-row">
        <div class="field">
          <label for="max_spend">Max spend ($)</label>
          <input id="max_spend" name="max_spend" inputmode="decimal" value="{{maxSpend}}" placeholder="Unlimited" aria-describedby="max_spend-hint"{{#spendCap.has}} data-max="{{spendCap.max}}" data-cap="{{spendCap.cap}}" data-kind="money" data-label="Max spend"{{/spendCap.has}}>
          <p class="hint" id="max_spend-hint">{{#spendCap.has}}{{spendCap.text}}{{/spendCap.has}}{{^spendCap.has}}Empty: no spend cap{{/spendCap.has}}</p>
        </div>
        <div class="field">
          <label for="period">Reset</label>
          <select id="period" name="period">{{#periods}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{label}}</option>{{/periods}}</select>
        </div>
      </div>

      <div class="field-row">
        <div class="field">
          <label for="tpm">TPM (tokens per minute)</label>
          <input id="tpm" name="tpm" inputmode="numeric" value="{{tpm}}" placeholder="e.g. 20k" aria-describedby="tpm-hint"{{#tpmCap.has}} data-max="{{tpmCap.max}}" data-cap="{{tpmCap.cap}}" data-kind="count" data-label="TPM"{{/tpmCap.has}}>
          <p class="hint" id="tpm-hint">{{#tpmCap.has}}{{tpmCap.text}}{{/tpmCap.has}}{{^tpmCap.has}}Empty: no key TPM limit{{/tpmCap.has}}</p>
        </div>
        <div class="field">
          <label for="rpm">RPM (requests per minute)</label>
          <input id="rpm" name="rpm" inputmode="numeric" value="{{rpm}}" placeholder="e.g. 60" aria-describedby="rpm-hint"{{#rpmCap.has}} data-max="{{rpmCap.max}}" data-cap="{{rpmCap.cap}}" data-kind="count" data-label="RPM"{{/rpmCap.has}}>
          <p class="hint" id="rpm-hint">{{#rpmCap.has}}{{rpmCap.text}}{{/rpmCap.has}}{{^rpmCap.has}}Empty: no key RPM limit{{/rpmCap.has}}</p>
        </div>
      </div>

      <fieldset class="field">
        <legend>Models</legend>
        {{#anyModel}}
        <label for="models_text" class="sr-only">Models</label>
        <input id="models_text" name="models_text" value="{{modelsText}}" placeholder="Comma-separated; empty = every model" aria-describedby="models-hint">
        <p class="hint" id="models-hint">This project allows every model.</p>
        {{/anyModel}}
        {{^anyModel}}
        <div class="checks" data-testid="model-choices">
          {{#models}}<label class="check"><input type="checkbox" name="models" value="{{name}}"{{#checked}} checked{{/checked}}> <span>{{name}}</span></label>{{/models}}
        </div>
        <p class="hint">Only the models you may grant are listed. None ticked: all of them.</p>
        {{/anyModel}}
      </fieldset>

      <div class="field-row">
        <div class="field">
          <label for="expires_in_days">Expires in (days)</label>
          <input id="expires_in_days" name="expires_in_days" type="number" min="1" max="3650" value="{{expiresInDays}}" placeholder="Never">
        </div>
        <div class="field">
          <label for="expires_on">Or on (date, UTC)</label>
          <input id="expires_on" name="expires_on" type="date" value="{{expiresOn}}">
        </div>
      </div>

      <label class="check check-block"><input type="checkbox" name="content_logging_disabled"{{#noLogging}} checked{{/noLogging}}> <span><strong>Disable content logging</strong><br><span class="muted">Gateways must not log prompts or completions made with this key.</span></span></label>

      <div class="form-actions">
        <a class="btn" href="/console/o/{{orgId}}/p/{{projectId}}">Cancel</a>
        <button type="submit" class="btn btn-primary" data-testid="create-key">Create key</button>
      </div>
    </form>
    """#

    static let keyCreated = #"""
    <div class="narrow">
      <div class="panel success-panel" data-key-id="{{key.id}}">
        <p class="eyebrow">Key created</p>
        <h1>{{key.name}}</h1>
        <p>Copy the secret now. <strong>It is shown only this once</strong>: bursar keeps only its digest.</p>
        {{>secret}}
        <dl class="facts">
          <div><dt>Shown as</dt><dd><code>{{key.display}}</code></dd></div>
          <div><dt>Limits</dt><dd>{{key.limits}}</dd></div>
          <div><dt>Expires</dt><dd>{{key.expiry}}</dd></div>
        </dl>
        <a class="btn" href="/console/o/{{orgId}}/p/{{projectId}}">Done</a>
      </div>
    </div>
    """#

    static let invited = #"""
    <div class="narrow">
      <div class="panel success-panel">
        <p class="eyebrow">Invitation sent</p>
        <h1>{{email}}</h1>
        <p>They join as {{role}} when they accept. Their acceptance token, <strong>shown only this once</strong> and valid until {{expires}}: hand it over privately. They open <code>/console/invitation</code> and paste it (or run <code>bursarctl invitation accept</code>).</p>
        {{>secret}}
        <a class="btn" href="/console/o/{{orgId}}/organization#manage_organization_members">Done</a>
      </div>
    </div>
    """#

    static let organization = #"""
    <div class="page-head"><div><p class="eyebrow">Owners only</p><h1>Organization</h1></div></div>

    <section class="panel" id="manage_organization_members" data-action="manage_organization_members" aria-labelledby="om-h">
      <h2 id="om-h">Members</h2>
      <div class="table-wrap">
        <table id="org-members" class="cards-sm">
          <thead><tr><th scope="col">Member</th><th scope="col">Role</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
          <tbody>
          {{#members}}
          <tr data-member-id="{{id}}">
            <td><div class="strong">{{name}}{{#me}} <span class="badge badge-muted">you</span>{{/me}}</div><div class="muted">{{email}}</div></td>
            <td><span class="badge {{#owner}}badge-role{{/owner}}">{{role}}</span></td>
            <td class="row-actions">
              {{#lastOwner}}<span class="muted small" title="An organization always keeps one Owner">Last owner</span>{{/lastOwner}}
              {{^lastOwner}}
              <form method="post" action="/console/o/{{orgId}}/organization/members/{{id}}/role" class="inline">
                {{>csrf}}
                <label class="sr-only" for="orole-{{id}}">Role of {{email}}</label>
                <select id="orole-{{id}}" name="role"><option value="owner"{{#owner}} selected{{/owner}}>Owner</option><option value="member"{{^owner}} selected{{/owner}}>Member</option></select>
                <button type="submit" class="btn btn-sm">Save</button>
              </form>
              <form method="post" action="/console/o/{{orgId}}/organization/members/{{id}}/remove" class="inline">
                {{>csrf}}
                <button type="submit" class="btn btn-danger-ghost btn-sm" aria-label="Remove {{email}} from the organization">Remove</button>
              </form>
              {{/lastOwner}}
            </td>
          </tr>
          {{/members}}
          </tbody>
        </table>
      </div>
      {{#hasInvitations}}
      <h3 id="inv-h">Pending invitations</h3>
      <div class="table-wrap">
        <table id="org-invitations" class="cards-sm" aria-labelledby="inv-h">
          <thead><tr><th scope="col">Invited</th><th scope="col">Role</th><th scope="col">Expires</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
          <tbody>
          {{#invitations}}
          <tr data-invitation-id="{{id}}">
            <td><div class="strong">{{email}}</div>{{#name}}<div class="muted">{{name}}</div>{{/name}}</td>
            <td><span class="badge">{{role}}</span></td>
            <td>{{expires}}</td>
            <td class="row-actions">
              <form method="post" action="/console/o/{{orgId}}/organization/invitations/{{id}}/revoke" class="inline">
                {{>csrf}}
                <button type="submit" class="btn btn-danger-ghost btn-sm" aria-label="Withdraw the invitation of {{email}}">Withdraw</button>
              </form>
            </td>
          </tr>
          {{/invitations}}
          </tbody>
        </table>
      </div>
      {{/hasInvitations}}
      <form id="invite" method="post" action="/console/o/{{orgId}}/organization/members" class="form form-inline-grid">
        {{>csrf}}
        <div class="field"><label for="inv-email">E-mail</label><input id="inv-email" name="email" type="email" required placeholder="teammate@company.com"></div>
        <div class="field"><label for="inv-name">Name</label><input id="inv-name" name="name" placeholder="Optional"></div>
        <div class="field"><label for="inv-role">Role</label><select id="inv-role" name="role"><option value="member">Member</option><option value="owner">Owner</option></select></div>
        <div class="field field-end"><button type="submit" class="btn btn-primary">+ Invite</button></div>
      </form>
    </section>

    <section class="panel" id="billing_and_credits" data-action="billing_and_credits" aria-labelledby="bc-h">
      <h2 id="bc-h">Billing &amp; credits</h2>
      <dl class="facts">
        <div><dt>Credits</dt><dd class="num big" data-testid="credits">{{credits}}</dd></div>
        <div><dt>Metered</dt><dd>{{#metered}}Yes: requests stop when credits run out{{/metered}}{{^metered}}No{{/metered}}</dd></div>
        <div><dt>Month</dt><dd>since {{month}}</dd></div>
      </dl>
      <h3>Spend by project</h3>
      <ul class="spend-list">
        {{#spendByProject}}<li data-project-id="{{id}}"><span class="strong">{{name}}</span>{{#budget}}{{>budget}}{{/budget}}</li>{{/spendByProject}}
      </ul>
      <form id="add-credits" method="post" action="/console/o/{{orgId}}/organization/credits" class="form form-inline-grid">
        {{>csrf}}
        <div class="field"><label for="cr-amount">Add credits ($; negative to deduct)</label><input id="cr-amount" name="amount" inputmode="decimal" required placeholder="500"></div>
        <div class="field"><label for="cr-metered">Metering</label><select id="cr-metered" name="metered"><option value="">Keep as is</option><option value="true">Metered</option><option value="false">Not metered</option></select></div>
        <div class="field field-end"><button type="submit" class="btn btn-primary">Apply</button></div>
      </form>
    </section>

    <section class="panel" id="manage_keys_across_all_projects" data-action="manage_keys_across_all_projects" aria-labelledby="ak-h">
      <h2 id="ak-h">All keys</h2>
      {{#noKeys}}<p class="empty">No keys in any project.</p>{{/noKeys}}
      {{^noKeys}}
      {{>key-table}}
      {{/noKeys}}
    </section>

    <div class="grid-2">
      <section class="panel" id="external_keys_byok" data-action="external_keys_byok" aria-labelledby="byok-h">
        <h2 id="byok-h">External keys (BYOK)</h2>
        {{^byok}}<p class="muted small">No external keys yet.</p>{{/byok}}
        <ul class="item-list">
          {{#byok}}<li data-byok-id="{{id}}"><span><span class="strong">{{name}}</span> <span class="muted">{{provider}}</span> <code>{{display}}</code></span>
            <form method="post" action="/console/o/{{orgId}}/organization/byok/{{id}}/delete" class="inline">{{>csrf}}<button type="submit" class="btn btn-danger-ghost btn-sm" aria-label="Delete external key {{name}}">Delete</button></form></li>{{/byok}}
        </ul>
        <form method="post" action="/console/o/{{orgId}}/organization/byok" class="form" id="byok-form">
          {{>csrf}}
          <div class="field-row">
            <div class="field"><label for="bk-provider">Provider</label><input id="bk-provider" name="provider" required placeholder="openai"></div>
            <div class="field"><label for="bk-name">Name</label><input id="bk-name" name="name" required placeholder="prod-openai"></div>
          </div>
          <div class="field"><label for="bk-secret">Provider secret</label><input id="bk-secret" name="secret" type="password" required autocomplete="off"></div>
          <button type="submit" class="btn">Add external key</button>
        </form>
      </section>

      <section class="panel" id="prices" data-action="billing_and_credits" aria-labelledby="price-h">
        <h2 id="price-h">Prices</h2>
        <p class="muted small">Per million tokens. Requests that come without a cost (Envoy's, and gateways that ask bursar to price them) are priced from this table; under a budget, a model without a price is refused.</p>
        {{^hasPrices}}<p class="muted small">No prices yet.</p>{{/hasPrices}}
        {{#hasPrices}}<table class="table" data-testid="price-table"><thead><tr><th>Model</th><th class="num">Input</th><th class="num">Output</th><th class="num">Cached input</th><th></th></tr></thead><tbody>{{/hasPrices}}
          {{#prices}}<tr data-price-model="{{model}}"><td class="strong">{{model}}</td><td class="num">{{input}}</td><td class="num">{{output}}</td><td class="num">{{cached}}</td>
            <td><form method="post" action="/console/o/{{orgId}}/organization/prices/{{path}}/delete" class="inline">{{>csrf}}<button type="submit" class="btn btn-danger-ghost btn-sm" aria-label="Delete price of {{model}}">Delete</button></form></td></tr>{{/prices}}
        {{#hasPrices}}</tbody></table>{{/hasPrices}}
        <form method="post" action="/console/o/{{orgId}}/organization/prices" class="form" id="price-form">
          {{>csrf}}
          <div class="field-row">
            <div class="field"><label for="price-model">Model</label><input id="price-model" name="model" required placeholder="gpt-5.5"></div>
            <div class="field"><label for="price-input">Input $ / 1M</label><input id="price-input" name="input" inputmode="decimal" required placeholder="2.50"></div>
            <div class="field"><label for="price-output">Output $ / 1M</label><input id="price-output" name="output" inputmode="decimal" required placeholder="10"></div>
            <div class="field"><label for="price-cached">Cached input $ / 1M</label><input id="price-cached" name="cached" inputmode="decimal" placeholder="same as input"></div>
          </div>
          <button type="submit" class="btn">Save price</button>
        </form>
        <form method="post" action="/console/o/{{orgId}}/organization/prices-import" class="form" id="price-import-form">
          {{>csrf}}
          <div class="field"><label for="price-file">Import LiteLLM's model_prices_and_context_window.json (paste)</label><textarea id="price-file" name="file" rows="4" required placeholder='{"gpt-4o": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05}}'></textarea></div>
          <div class="field"><label for="price-only">Only these models (optional)</label><input id="price-only" name="models" placeholder="gpt-4o, claude-sonnet-4"></div>
          <button type="submit" class="btn">Import prices</button>
        </form>
      </section>

      <section class="panel" id="virtual_models" data-action="virtual_models" aria-labelledby="vm-h">
        <h2 id="vm-h">Virtual models</h2>
        {{^virtualModels}}<p class="muted small">No virtual models yet.</p>{{/virtualModels}}
        <ul class="item-list">
          {{#virtualModels}}<li data-virtual-model="{{name}}"><span><span class="strong">{{name}}</span> <span class="muted">→ {{targets}}</span></span>
            <form method="post" action="/console/o/{{orgId}}/organization/virtual-models/{{path}}/delete" class="inline">{{>csrf}}<button type="submit" class="btn btn-danger-ghost btn-sm" aria-label="Delete virtual model {{name}}">Delete</button></form></li>{{/virtualModels}}
        </ul>
        <form method="post" action="/console/o/{{orgId}}/organization/virtual-models" class="form" id="vm-form">
          {{>csrf}}
          <div class="field-row">
            <div class="field"><label for="vm-name">Name</label><input id="vm-name" name="name" required placeholder="fast"></div>
            <div class="field"><label for="vm-targets">Targets</label><input id="vm-targets" name="targets" required placeholder="gpt-5.5-mini, claude-haiku"></div>
          </div>
          <button type="submit" class="btn">Save virtual model</button>
        </form>
      </section>

      <section class="panel" id="mcp_servers" data-action="mcp_servers" aria-labelledby="mcp-h">
        <h2 id="mcp-h">MCP servers</h2>
        {{^mcp}}<p class="muted small">No MCP servers yet.</p>{{/mcp}}
        <ul class="item-list">
          {{#mcp}}<li data-mcp-id="{{id}}"><span><span class="strong">{{name}}</span> <span class="muted">{{url}}</span></span>
            <form method="post" action="/console/o/{{orgId}}/organization/mcp-servers/{{id}}/delete" class="inline">{{>csrf}}<button type="submit" class="btn btn-danger-ghost btn-sm" aria-label="Delete MCP server {{name}}">Delete</button></form></li>{{/mcp}}
        </ul>
        <form method="post" action="/console/o/{{orgId}}/organization/mcp-servers" class="form" id="mcp-form">
          {{>csrf}}
          <div class="field-row">
            <div class="field"><label for="mcp-name">Name</label><input id="mcp-name" name="name" required placeholder="search"></div>
            <div class="field"><label for="mcp-url">URL</label><input id="mcp-url" name="url" type="url" required placeholder="https://mcp.example.com"></div>
          </div>
          <button type="submit" class="btn">Add MCP server</button>
        </form>
      </section>

      <section class="panel" id="prompt_management" data-action="prompt_management" aria-labelledby="pr-h">
        <h2 id="pr-h">Prompts</h2>
        {{^prompts}}<p class="muted small">No prompts yet.</p>{{/prompts}}
        <ul class="item-list">
          {{#prompts}}<li data-prompt="{{name}}"><span><span class="strong">{{name}}</span> <span class="muted">v{{version}}</span></span>
            <form method="post" action="/console/o/{{orgId}}/organization/prompts/{{path}}/delete" class="inline">{{>csrf}}<button type="submit" class="btn btn-danger-ghost btn-sm" aria-label="Delete prompt {{name}}">Delete</button></form></li>{{/prompts}}
        </ul>
        <form method="post" action="/console/o/{{orgId}}/organization/prompts" class="form" id="prompt-form">
          {{>csrf}}
          <div class="field"><label for="pr-name">Name</label><input id="pr-name" name="name" required placeholder="support-triage"></div>
          <div class="field"><label for="pr-text">Text</label><textarea id="pr-text" name="text" rows="3" required></textarea></div>
          <button type="submit" class="btn">Create prompt</button>
        </form>
      </section>
    </div>
    """#

    static let audit = #"""
    <div class="page-head"><div><p class="eyebrow">Owners only</p><h1>Audit log</h1><p class="muted">Every change, and every refused attempt. Showing {{count}} most recent entries.</p></div></div>
    <form id="audit-filter" method="get" action="/console/o/{{orgId}}/audit" class="panel form form-inline-grid">
      <div class="field"><label for="f-actor">Actor</label><input id="f-actor" name="actor" value="{{actor}}" placeholder="e-mail or user:12"></div>
      <div class="field"><label for="f-action">Action</label><input id="f-action" name="action" value="{{action}}" placeholder="key.create"></div>
      <div class="field"><label for="f-target">Target</label><input id="f-target" name="target" value="{{target}}" placeholder="project:3"></div>
      <div class="field field-end"><button type="submit" class="btn btn-primary">Filter</button> <a class="btn btn-ghost" href="/console/o/{{orgId}}/audit">Clear</a></div>
    </form>
    {{#none}}<p class="empty">No entries match.</p>{{/none}}
    {{^none}}
    <div class="table-wrap panel">
      <table id="audit">
        <thead><tr><th scope="col">When</th><th scope="col">Actor</th><th scope="col">Action</th><th scope="col">Target</th><th scope="col">Outcome</th></tr></thead>
        <tbody>
        {{#entries}}
        <tr data-audit-action="{{action}}"><td title="{{iso}}">{{time}}</td><td>{{actor}}</td><td><code>{{action}}</code></td><td>{{target}}</td><td><span class="badge {{#ok}}badge-ok{{/ok}}{{^ok}}badge-warn{{/ok}}">{{outcome}}</span></td></tr>
        {{/entries}}
        </tbody>
      </table>
    </div>
    {{/none}}
    """#
}
