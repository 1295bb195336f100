import BursarAPI
import Hummingbird
import Mustache

/// What every signed-in page shows around its content: who is signed in, the organizations they
/// can switch between, the navigation their role allows, and the sign-out form.
struct Chrome {
    var email: String
    var csrf: String
    var orgs: [(id: UInt64, name: String, current: Bool)]
    var org: (id: UInt64, name: String, owner: Bool)?
    var page: String = ""

    init(_ signed: Console.Signed, org: UInt64?) {
        email = signed.me.user?.email ?? ""
        csrf = signed.session.csrf
        orgs = signed.me.organizations.map { ($0.id, $0.name, $0.id == org) }
        if let org, let o = signed.me.organizations.first(where: { $0.id == org }) {
            self.org = (o.id, o.name, o.role == "owner")
        }
    }

    var context: [String: Any] {
        var c: [String: Any] = [
            "email": email, "csrf": csrf,
            "orgs": orgs.map { ["id": String($0.id), "name": $0.name, "current": $0.current] as [String: Any] },
            "manyOrgs": orgs.count > 1,
        ]
        if let org {
            c["org"] = [
                "id": String(org.id), "name": org.name, "owner": org.owner,
                "navOverview": page == "overview", "navOrganization": page == "organization", "navAudit": page == "audit",
            ] as [String: Any]
        } else {
            // Not absent: the layout's `{{#org}}` would look it up in the page's values.
            c["org"] = false
        }
        return c
    }
}

/// The templates, compiled once, and the responses made from them.
///
/// The templates are Templates/*.mustache (swift-mustache), compiled into bursard (Package.swift
/// embeds them) so a deployment is one binary. `{{…}}` escapes HTML, and no template renders a
/// value unescaped: a page extends the layout (`{{<layout}}{{$content}}…{{/content}}{{/layout}}`)
/// rather than being rendered first and pasted into it. Elements an action of the permission
/// matrix gates carry `data-action` with the action's name (proto/permissions.tsv); the browser
/// tests find them by it.
struct Views: Sendable {
    let library: MustacheLibrary

    /// Each template's name (its file's, without `.mustache`) and text, as SwiftPM embeds it:
    /// `PackageResources.<file name with - and . as _>`.
    static let templates: [(name: String, text: [UInt8])] = [
        ("layout", PackageResources.layout_mustache), ("budget", PackageResources.budget_mustache),
        ("csrf", PackageResources.csrf_mustache), ("secret", PackageResources.secret_mustache),
        ("key-table", PackageResources.key_table_mustache), ("key-rows", PackageResources.key_rows_mustache),
        ("sign-in", PackageResources.sign_in_mustache), ("link", PackageResources.link_mustache),
        ("error", PackageResources.error_mustache), ("overview", PackageResources.overview_mustache),
        ("project", PackageResources.project_mustache), ("key-new", PackageResources.key_new_mustache),
        ("key-created", PackageResources.key_created_mustache), ("organization", PackageResources.organization_mustache),
        ("invited", PackageResources.invited_mustache), ("audit", PackageResources.audit_mustache),
        ("accept", PackageResources.accept_mustache), ("accepted", PackageResources.accepted_mustache),
        ("key", PackageResources.key_mustache), ("history", PackageResources.history_mustache),
        ("chart", PackageResources.chart_mustache), ("budget-alert", PackageResources.budget_alert_mustache),
    ]

    /// The templates, parsed; the error names the template that does not parse.
    static func parse() throws -> MustacheLibrary {
        var library = MustacheLibrary()
        for (name, text) in templates {
            do {
                try library.register(String(decoding: text, as: UTF8.self), named: name)
            } catch {
                throw ParseError(template: name, error: error)
            }
        }
        return library
    }

    struct ParseError: Error, CustomStringConvertible {
        let template: String
        let error: any Error
        var description: String { "console template \(template) does not parse: \(error)" }
    }

    init() {
        // The templates are part of the binary; one that does not parse is a bug caught by the
        // tests (ConsoleTemplateTests).
        do {
            library = try Self.parse()
        } catch {
            fatalError("\(error)")
        }
    }

    /// Headers on every console response: no caching of pages that show limits and secrets, no
    /// framing, no script or style from anywhere but the console itself, no referrer (a sign-in
    /// link's code must not leak to another site).
    static let securityHeaders: HTTPFields = {
        var h = HTTPFields()
        h[.cacheControl] = "no-store"
        h[.xContentTypeOptions] = "nosniff"
        h[.contentSecurityPolicy] =
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        h[.init("Referrer-Policy")!] = "no-referrer"
        h[.init("X-Frame-Options")!] = "DENY"
        return h
    }()

    /// A page: `template`, which extends the layout, rendered with `context`.
    func page(
        _ template: String, title: String, _ context: [String: Any], chrome: Chrome?, status: HTTPResponse.Status = .ok
    ) -> Response {
        let html = self.html(template, title: title, context, chrome: chrome)
        var headers = Self.securityHeaders
        headers[.contentType] = "text/html; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    /// The HTML of a page: one render, with one context holding the page's values and the
    /// layout's (`title`, `page`, `chrome`; `errorCode` comes with the error page's values).
    func html(_ template: String, title: String, _ context: [String: Any], chrome: Chrome?) -> String {
        assert(context["title"] == nil && context["page"] == nil && context["chrome"] == nil, "a page value hides the layout's")
        var chrome = chrome
        chrome?.page = template
        var all = context
        all["title"] = title
        all["page"] = template
        if let chrome { all["chrome"] = chrome.context }
        return library.render(all, withTemplate: template) ?? ""
    }

    /// An error page: `code` is the admin API's stable error code (or `csrf`, `link_invalid`).
    func errorPage(status: HTTPResponse.Status, code: String, message: String, chrome: Chrome?) -> Response {
        let heading: String = switch code {
        case "not_found": "Not found"
        case "forbidden": "Not allowed"
        case "csrf": "Form refused"
        case "link_invalid": "Link no longer valid"
        case "store_unavailable": "Temporarily unavailable"
        default: "Something is not right"
        }
        return page(
            "error", title: heading,
            ["heading": heading, "message": message, "errorCode": code, "home": chrome != nil, "status": String(status.code)],
            chrome: chrome, status: status)
    }
}
