import BursarAPI
import BursarLimits
import Foundation
import Testing

// proto/openapi.json against the route table (/tmp/spec/routes.md, hard-coded below) and against
// the Swift body types (every type of Bodies.swift, encoded with APIJSON, must validate), and the
// validator in Support/OpenAPIValidator.swift against what it must refuse.

// MARK: The route table

/// One row of the route table: what the document must say about one operation.
struct DocumentedRoute: Sendable, CustomTestStringConvertible {
    var method: String
    var template: String
    /// The request body's component schema, if any.
    var request: String?
    var status: Int
    /// The success body's component schema (nil: no content).
    var response: String?
    /// What the operation's description must name: the permissions.tsv action, or who may call it.
    var permission: String

    /// The import's request body: LiteLLM's price file, not a component schema.
    static let litellmPriceFile = "(LiteLLM price file)"

    init(_ method: String, _ template: String, _ request: String?, _ status: Int, _ response: String?, _ permission: String) {
        (self.method, self.template, self.request, self.status, self.response, self.permission) = (method, template, request, status, response, permission)
    }

    var testDescription: String { "\(method) \(template)" }

    /// A concrete path for the template.
    var samplePath: String {
        template.replacingOccurrences(of: "{org}", with: "3").replacingOccurrences(of: "{project}", with: "7")
            .replacingOccurrences(of: "{user}", with: "11").replacingOccurrences(of: "{key}", with: "12")
            .replacingOccurrences(of: "{id}", with: "5").replacingOccurrences(of: "{name}", with: "fast")
    }

    static let ownOrAll = "create_and_manage_own_keys"

    /// routes.md, row by row.
    static let table: [DocumentedRoute] = [
        DocumentedRoute("POST", "/v1/bootstrap", "BootstrapRequest", 201, "BootstrapResponse", "Permission: none"),
        DocumentedRoute("GET", "/v1/me", nil, 200, "MeResponse", "any valid token"),
        DocumentedRoute("GET", "/v1/me/token", nil, 200, "TokenInfoResponse", "any valid token"),
        DocumentedRoute("DELETE", "/v1/me/token", nil, 204, nil, "any user token"),
        DocumentedRoute("POST", "/v1/me/token/rotate", "RotateTokenRequest", 201, "RotatedTokenResponse", "any valid token"),
        DocumentedRoute("POST", "/v1/console-links", nil, 201, "ConsoleLinkResponse", "any user token"),
        DocumentedRoute("GET", "/v1/orgs", nil, 200, "OrgListResponse", "any valid token"),
        DocumentedRoute("POST", "/v1/orgs", "CreateOrgRequest", 201, "CreateOrgResponse", "operator only"),
        DocumentedRoute("GET", "/v1/gateway-credentials", nil, 200, "GatewayCredentialList", "operator only"),
        DocumentedRoute("POST", "/v1/gateway-credentials", "CreateGatewayCredentialRequest", 201, "GatewayCredentialBody", "operator only"),
        DocumentedRoute("DELETE", "/v1/gateway-credentials/{credential}", nil, 204, nil, "operator only"),
        DocumentedRoute("GET", "/v1/orgs/{org}", nil, 200, "OrgBody", "the operator, or any user of the organization"),
        DocumentedRoute("POST", "/v1/orgs/{org}/suspend", nil, 200, "OrgBody", "operator only"),
        DocumentedRoute("POST", "/v1/orgs/{org}/activate", nil, 200, "OrgBody", "operator only"),
        DocumentedRoute("GET", "/v1/orgs/{org}/members", nil, 200, "MemberListResponse", "manage_organization_members"),
        DocumentedRoute("POST", "/v1/orgs/{org}/members", "InviteRequest", 201, "InviteResponse", "manage_organization_members"),
        DocumentedRoute("GET", "/v1/orgs/{org}/invitations", nil, 200, "InvitationListResponse", "manage_organization_members"),
        DocumentedRoute("DELETE", "/v1/orgs/{org}/invitations/{id}", nil, 204, nil, "manage_organization_members"),
        DocumentedRoute("POST", "/v1/invitations/accept", "AcceptInvitationRequest", 201, "AcceptInvitationResponse", "the invited person"),
        DocumentedRoute("PATCH", "/v1/orgs/{org}/members/{user}", "MemberRoleRequest", 200, "MemberBody", "manage_organization_members"),
        DocumentedRoute("DELETE", "/v1/orgs/{org}/members/{user}", nil, 204, nil, "manage_organization_members"),
        DocumentedRoute("GET", "/v1/orgs/{org}/projects", nil, 200, "ProjectListResponse", "view_project"),
        DocumentedRoute("POST", "/v1/orgs/{org}/projects", "CreateProjectRequest", 201, "ProjectBody", "create_project"),
        DocumentedRoute("GET", "/v1/orgs/{org}/projects/{project}", nil, 200, "ProjectBody", "view_project"),
        DocumentedRoute("PATCH", "/v1/orgs/{org}/projects/{project}", "UpdateProjectRequest", 200, "ProjectBody", "edit_project_settings"),
        DocumentedRoute("DELETE", "/v1/orgs/{org}/projects/{project}", nil, 204, nil, "delete_project"),
        DocumentedRoute("GET", "/v1/orgs/{org}/projects/{project}/members", nil, 200, "ProjectMemberListResponse", "view_project_members"),
        DocumentedRoute("POST", "/v1/orgs/{org}/projects/{project}/members", "AddProjectMemberRequest", 201, "ProjectMemberBody", "add_project_members"),
        DocumentedRoute("PATCH", "/v1/orgs/{org}/projects/{project}/members/{user}", "UpdateProjectMemberRequest", 200, "ProjectMemberBody", "edit_member_roles"),
        DocumentedRoute("DELETE", "/v1/orgs/{org}/projects/{project}/members/{user}", nil, 204, nil, "edit_member_roles"),
        DocumentedRoute("GET", "/v1/orgs/{org}/projects/{project}/keys", nil, 200, "KeyListResponse", ownOrAll),
        DocumentedRoute("POST", "/v1/orgs/{org}/projects/{project}/keys", "CreateKeyRequest", 201, "KeySecretResponse", ownOrAll),
        DocumentedRoute("GET", "/v1/orgs/{org}/keys", nil, 200, "KeyListResponse", "manage_keys_across_all_projects"),
        DocumentedRoute("GET", "/v1/orgs/{org}/keys/{key}", nil, 200, "KeyBody", ownOrAll),
        DocumentedRoute("PATCH", "/v1/orgs/{org}/keys/{key}", "UpdateKeyRequest", 200, "KeyBody", ownOrAll),
        DocumentedRoute("POST", "/v1/orgs/{org}/keys/{key}/revoke", nil, 200, "KeyBody", ownOrAll),
        DocumentedRoute("POST", "/v1/orgs/{org}/keys/{key}/rotate", nil, 200, "KeySecretResponse", ownOrAll),
        DocumentedRoute("GET", "/v1/orgs/{org}/billing", nil, 200, "BillingResponse", "billing_and_credits"),
        DocumentedRoute("POST", "/v1/orgs/{org}/credits", "AddCreditsRequest", 200, "CreditsResponse", "billing_and_credits"),
        DocumentedRoute("GET", "/v1/orgs/{org}/keys/{key}/usage", nil, 200, "KeyUsageResponse", ownOrAll),
        DocumentedRoute("GET", "/v1/orgs/{org}/projects/{project}/usage", nil, 200, "ProjectUsageResponse", "view_project"),
        DocumentedRoute("GET", "/v1/orgs/{org}/usage", nil, 200, "OrgUsageResponse", "billing_and_credits"),
        DocumentedRoute("GET", "/v1/orgs/{org}/usage/history", nil, 200, "HistoryResponse", "Owners everything"),
        DocumentedRoute("GET", "/v1/orgs/{org}/top", nil, 200, "TopResponse", "manage_keys_across_all_projects"),
        DocumentedRoute("GET", "/v1/orgs/{org}/prices", nil, 200, "PriceListResponse", "Owners see every price"),
        DocumentedRoute("PUT", "/v1/orgs/{org}/prices/{name}", "PutPriceRequest", 200, "PriceBody", "billing_and_credits"),
        DocumentedRoute("DELETE", "/v1/orgs/{org}/prices/{name}", nil, 204, nil, "billing_and_credits"),
        DocumentedRoute("POST", "/v1/orgs/{org}/prices/import", DocumentedRoute.litellmPriceFile, 200, "PriceImportResponse", "billing_and_credits"),
        DocumentedRoute("GET", "/v1/orgs/{org}/byok", nil, 200, "ByokListResponse", "external_keys_byok"),
        DocumentedRoute("POST", "/v1/orgs/{org}/byok", "CreateByokRequest", 201, "ByokBody", "external_keys_byok"),
        DocumentedRoute("DELETE", "/v1/orgs/{org}/byok/{id}", nil, 204, nil, "external_keys_byok"),
        DocumentedRoute("GET", "/v1/orgs/{org}/virtual-models", nil, 200, "VirtualModelListResponse", "virtual_models"),
        DocumentedRoute("GET", "/v1/orgs/{org}/virtual-models/{name}", nil, 200, "VirtualModelBody", "virtual_models"),
        DocumentedRoute("PUT", "/v1/orgs/{org}/virtual-models/{name}", "PutVirtualModelRequest", 200, "VirtualModelBody", "virtual_models"),
        DocumentedRoute("DELETE", "/v1/orgs/{org}/virtual-models/{name}", nil, 204, nil, "virtual_models"),
        DocumentedRoute("GET", "/v1/orgs/{org}/mcp-servers", nil, 200, "McpServerListResponse", "mcp_servers"),
        DocumentedRoute("POST", "/v1/orgs/{org}/mcp-servers", "McpServerRequest", 201, "McpServerBody", "mcp_servers"),
        DocumentedRoute("GET", "/v1/orgs/{org}/mcp-servers/{id}", nil, 200, "McpServerBody", "mcp_servers"),
        DocumentedRoute("PATCH", "/v1/orgs/{org}/mcp-servers/{id}", "McpServerRequest", 200, "McpServerBody", "mcp_servers"),
        DocumentedRoute("DELETE", "/v1/orgs/{org}/mcp-servers/{id}", nil, 204, nil, "mcp_servers"),
        DocumentedRoute("GET", "/v1/orgs/{org}/prompts", nil, 200, "PromptListResponse", "prompt_management"),
        DocumentedRoute("POST", "/v1/orgs/{org}/prompts", "PromptRequest", 201, "PromptBody", "prompt_management"),
        DocumentedRoute("GET", "/v1/orgs/{org}/prompts/{name}", nil, 200, "PromptBody", "prompt_management"),
        DocumentedRoute("POST", "/v1/orgs/{org}/prompts/{name}/versions", "PromptRequest", 201, "PromptBody", "prompt_management"),
        DocumentedRoute("DELETE", "/v1/orgs/{org}/prompts/{name}", nil, 204, nil, "prompt_management"),
        DocumentedRoute("GET", "/v1/orgs/{org}/audit", nil, 200, "AuditResponse", "Owners only"),
    ]
}

// MARK: Body samples

/// A body type with a sample that sets every field and one that leaves every optional unset.
struct BodySample: Sendable, CustomTestStringConvertible {
    /// The component schema (the Swift type's name, `Error`/`ErrorDetail` for ErrorBody/APIErrorDetail).
    var schema: String
    var full: any Encodable & Sendable
    var minimal: any Encodable & Sendable
    var testDescription: String { schema }

    init(_ schema: String, full: any Encodable & Sendable, minimal: any Encodable & Sendable) {
        (self.schema, self.full, self.minimal) = (schema, full, minimal)
    }
    init(_ schema: String, _ only: any Encodable & Sendable) {
        (self.schema, self.full, self.minimal) = (schema, only, only)
    }
}

enum BodySamples {
    static let user = UserBody(id: 7, email: "ann@acme.test", name: "Ann")
    static let org = OrgBody(id: 3, name: "acme", status: "active", role: "owner")
    static let orgMinimal = OrgBody(id: 4, name: "beta", status: "suspended")
    static let member = MemberBody(userId: 7, email: "ann@acme.test", name: "Ann", role: "owner")
    static let grant = GrantBody(models: ["gpt-4o", "fast"], maxKeySpendNusd: 5_000_000_000, rpm: 60, tpm: 100_000)
    static let project = ProjectBody(id: 9, name: "search", status: "active", models: ["gpt-4o", "fast"], rpm: 600, tpm: 1_000_000,
                                     monthlyBudgetNusd: 100_000_000_000, role: "admin")
    static let projectMinimal = ProjectBody(id: 10, name: "old", status: "archived", models: [], rpm: nil, tpm: nil, monthlyBudgetNusd: nil, role: nil)
    static let projectMember = ProjectMemberBody(userId: 8, email: "bob@acme.test", name: "Bob", role: "member", grant: grant, orgOwner: false)
    /// The largest id the API can carry.
    static let key = KeyBody(id: UInt64.max, projectId: 9, userId: 8, name: "ci", display: "sk-br-…4f2a", status: "active", maxSpendNusd: 2_000_000_000,
                             period: "weekly", rpm: 60, tpm: 50_000, models: ["gpt-4o"], expiresAtMs: 1_767_225_600_000, contentLoggingDisabled: true,
                             createdAtMs: 1_750_000_000_000, createdBy: 7)
    static let keyMinimal = KeyBody(id: 13, projectId: 9, userId: 8, name: "old", display: "sk-br-…0000", status: "revoked", maxSpendNusd: nil,
                                    period: "lifetime", rpm: nil, tpm: nil, models: [], expiresAtMs: nil, contentLoggingDisabled: false,
                                    createdAtMs: 1_750_000_000_000, createdBy: 8)
    static let projectSpend = ProjectSpendBody(projectId: 9, name: "search", spendNusd: 1_250_000_000, monthlyBudgetNusd: 100_000_000_000)
    static let keySpend = KeySpendBody(keyId: 12, projectId: 9, name: "ci", period: "daily", spendNusd: 0, maxSpendNusd: 2_000_000_000)
    static let byok = ByokBody(id: 5, provider: "openai", name: "prod", display: "…9xQz", createdAtMs: 1_750_000_000_000)
    static let price = PriceBody(model: "gpt-4o", inputPerMillionNusd: 2_500_000_000, outputPerMillionNusd: 10_000_000_000, cachedInputPerMillionNusd: 1_250_000_000)
    static let virtualModel = VirtualModelBody(name: "fast", targets: ["gpt-4o-mini", "claude-haiku"])
    static let mcp = McpServerBody(id: 5, name: "search", url: "https://mcp.acme.test/sse")
    static let promptVersion = PromptVersionBody(version: 1, text: "You are helpful.", createdAtMs: 1_750_000_000_000, createdBy: 7)
    static let prompt = PromptBody(name: "greeter", versions: [promptVersion, PromptVersionBody(version: 2, text: "Be brief.", createdAtMs: 1_750_000_100_000, createdBy: 8)])
    static let rate = RateUsageBody(limit: 600, used: 12, remaining: 588, resetMs: 1_200)
    static let rateUnlimited = RateUsageBody(limit: nil, used: 0, remaining: nil, resetMs: 0)
    static let spend = SpendUsageBody(period: "weekly", spendNusd: 1_250_000_000, windowStartMs: 1_749_427_200_000, resetsAtMs: 1_750_032_000_000,
                                      budgetNusd: 1_000_000_000, remainingNusd: -250_000_000, budgetAlerts: [50, 80, 100])
    static let spendLifetime = SpendUsageBody(period: "lifetime", spendNusd: 0, windowStartMs: nil, resetsAtMs: nil, budgetNusd: nil, remainingNusd: nil)
    static let historyRow = HistoryRowBody(
        day: "2026-12-03", projectId: 9, projectName: "search", keyId: 12, keyName: "ci", model: "gpt-5", requestsAdmitted: 40, requestsSettled: 36,
        requestsReleased: 3, requestsOpen: 1, requestsDenied: 5, denied: ["key_rpm": 4, "model_not_allowed": 1], tokensSettled: 81_000, tokensOpen: 1_500,
        tokens: 82_500, spendSettledNusd: 410_000_000, spendOpenNusd: 20_000_000, spendNusd: 430_000_000)
    static let historyTotals = HistoryRowBody(requestsAdmitted: 40, requestsSettled: 36, requestsReleased: 3, requestsOpen: 1, requestsDenied: 5,
                                              denied: ["key_rpm": 4, "model_not_allowed": 1], tokensSettled: 81_000, tokensOpen: 1_500, tokens: 82_500,
                                              spendSettledNusd: 410_000_000, spendOpenNusd: 20_000_000, spendNusd: 430_000_000)
    static let reserved = ReservedUsageBody(count: 2, costNusd: 8_000_000, tokens: 2_400)
    static let keyUsage = KeyUsageResponse(keyId: 12, projectId: 9, name: "ci", atMs: 1_750_000_000_000, requests: rate, tokens: rateUnlimited,
                                           effectiveRequests: rate, effectiveTokens: rateUnlimited, spend: spend, reserved: reserved)
    static let topKey = TopKeyBody(keyId: 12, projectId: 9, name: "ci", projectName: "search", requestsUsed: 40, tokensUsed: 12_000)
    static let topProject = TopProjectBody(projectId: 9, name: "search", requestsUsed: 55, tokensUsed: 20_000)
    static let audit = AuditEntryBody(id: "1750000000000-0", timeMs: 1_750_000_000_000, actor: "user:7", action: "key.revoke", target: "project:9/key:12", outcome: "ok")

    /// Every body type of Bodies.swift, UsageBodies.swift and JSON.swift.
    static let all: [BodySample] = [
        // Identity
        BodySample("BootstrapRequest", full: BootstrapRequest(org: "acme", ownerEmail: "ann@acme.test", ownerName: "Ann"),
                   minimal: BootstrapRequest(org: "acme", ownerEmail: "ann@acme.test")),
        BodySample("BootstrapResponse", BootstrapResponse(operatorToken: "op-br-abc", organization: org, owner: member, ownerToken: "pat-br-def")),
        BodySample("MeResponse", full: MeResponse(kind: "user", user: user, organizations: [org, orgMinimal]),
                   minimal: MeResponse(kind: "operator", user: nil, organizations: [])),
        BodySample("UserBody", user),
        // Organizations
        BodySample("OrgBody", full: org, minimal: orgMinimal),
        BodySample("CreateOrgRequest", full: CreateOrgRequest(name: "acme", ownerEmail: "ann@acme.test", ownerName: "Ann"),
                   minimal: CreateOrgRequest(name: "acme", ownerEmail: "ann@acme.test")),
        BodySample("CreateOrgResponse", full: CreateOrgResponse(organization: org, owner: member, ownerToken: "pat-br-def"),
                   minimal: CreateOrgResponse(organization: orgMinimal, owner: member, ownerToken: nil)),
        BodySample("OrgListResponse", full: OrgListResponse(organizations: [org, orgMinimal]), minimal: OrgListResponse(organizations: [])),
        // Gateway credentials
        BodySample("CreateGatewayCredentialRequest", CreateGatewayCredentialRequest(name: "gw-eu", organizations: [1, 7])),
        BodySample("GatewayCredentialBody",
                   full: GatewayCredentialBody(id: "gw_0123456789abcdef", name: "gw-eu", organizations: [1, 7], createdAtMs: 1_780_000_000_000, secret: "bgw_abc-_9"),
                   minimal: GatewayCredentialBody(id: "gw_0123456789abcdef", name: "gw-eu", organizations: [1], createdAtMs: 1_780_000_000_000)),
        BodySample("GatewayCredentialList", full: GatewayCredentialList(credentials: [
            GatewayCredentialBody(id: "gw_0123456789abcdef", name: "gw-eu", organizations: [1], createdAtMs: 1_780_000_000_000),
        ]), minimal: GatewayCredentialList(credentials: [])),
        // Organization members
        BodySample("ConsoleLinkResponse", ConsoleLinkResponse(path: "/console/link/abc_-9", expiresInSeconds: 600)),
        BodySample("TokenInfoResponse", full: TokenInfoResponse(kind: "user", createdMs: 1_780_000_000_000, expiresMs: 1_790_000_000_000, lastUsedMs: 1_780_000_001_000),
                   minimal: TokenInfoResponse(kind: "operator")),
        BodySample("RotateTokenRequest", full: RotateTokenRequest(expiresInDays: 90), minimal: RotateTokenRequest()),
        BodySample("RotatedTokenResponse", full: RotatedTokenResponse(token: "pat-br-abc_-9", expiresMs: 1_790_000_000_000),
                   minimal: RotatedTokenResponse(token: "op-br-xyz")),
        BodySample("MemberBody", member),
        BodySample("InviteRequest", full: InviteRequest(email: "bob@acme.test", name: "Bob", role: "member"), minimal: InviteRequest(email: "bob@acme.test")),
        BodySample("InvitationBody",
                   full: InvitationBody(id: 3, email: "bob@acme.test", name: "Bob", role: "member", createdAtMs: 1_780_000_000_000, expiresAtMs: 1_780_604_800_000),
                   minimal: InvitationBody(id: 3, email: "bob@acme.test", name: nil, role: "owner", createdAtMs: 1_780_000_000_000, expiresAtMs: 1_780_604_800_000)),
        BodySample("InviteResponse", InviteResponse(
            invitation: InvitationBody(id: 3, email: "bob@acme.test", name: nil, role: "member", createdAtMs: 1_780_000_000_000, expiresAtMs: 1_780_604_800_000),
            acceptToken: "inv-br-abc")),
        BodySample("InvitationListResponse", full: InvitationListResponse(invitations: [
            InvitationBody(id: 3, email: "bob@acme.test", name: nil, role: "member", createdAtMs: 1_780_000_000_000, expiresAtMs: 1_780_604_800_000),
        ]), minimal: InvitationListResponse(invitations: [])),
        BodySample("AcceptInvitationRequest", AcceptInvitationRequest(token: "inv-br-abc")),
        BodySample("AcceptInvitationResponse", full: AcceptInvitationResponse(organization: org, member: member, token: "pat-br-ghi"),
                   minimal: AcceptInvitationResponse(organization: org, member: member, token: nil)),
        BodySample("MemberRoleRequest", MemberRoleRequest(role: "member")),
        BodySample("MemberListResponse", full: MemberListResponse(members: [member]), minimal: MemberListResponse(members: [])),
        // Projects
        BodySample("ProjectBody", full: project, minimal: projectMinimal),
        BodySample("CreateProjectRequest", full: CreateProjectRequest(name: "search", models: ["gpt-4o"], rpm: 600, tpm: 1_000_000, monthlyBudgetNusd: 100_000_000_000),
                   minimal: CreateProjectRequest(name: "search")),
        BodySample("UpdateProjectRequest", full: UpdateProjectRequest(name: "search2", status: "archived", models: ["fast"], rpm: .set(300), tpm: .clear, monthlyBudgetNusd: .set(0)),
                   minimal: UpdateProjectRequest()),
        BodySample("ProjectListResponse", full: ProjectListResponse(projects: [project, projectMinimal]), minimal: ProjectListResponse(projects: [])),
        // Project members
        BodySample("GrantBody", full: grant, minimal: GrantBody()),
        BodySample("ProjectMemberBody", full: projectMember,
                   minimal: ProjectMemberBody(userId: 7, email: "ann@acme.test", name: "Ann", role: "admin", grant: GrantBody(), orgOwner: true)),
        BodySample("AddProjectMemberRequest", full: AddProjectMemberRequest(userId: 8, email: "bob@acme.test", role: "admin", grant: grant),
                   minimal: AddProjectMemberRequest()),
        BodySample("UpdateProjectMemberRequest", full: UpdateProjectMemberRequest(role: "member", grant: grant), minimal: UpdateProjectMemberRequest()),
        BodySample("ProjectMemberListResponse", full: ProjectMemberListResponse(members: [projectMember]), minimal: ProjectMemberListResponse(members: [])),
        // Keys
        BodySample("KeyBody", full: key, minimal: keyMinimal),
        BodySample("CreateKeyRequest",
                   full: CreateKeyRequest(name: "ci", userId: 8, maxSpendNusd: 2_000_000_000, period: "monthly", rpm: 60, tpm: 50_000, models: ["gpt-4o"],
                                          expiresAtMs: 1_767_225_600_000, expiresInDays: 30, contentLoggingDisabled: true),
                   minimal: CreateKeyRequest(name: "ci")),
        BodySample("KeySecretResponse", full: KeySecretResponse(key: key, secret: "sk-br-secret"), minimal: KeySecretResponse(key: keyMinimal, secret: "sk-br-secret")),
        BodySample("UpdateKeyRequest",
                   full: UpdateKeyRequest(name: "ci2", maxSpendNusd: .clear, period: "daily", rpm: .set(30), tpm: .clear, models: [],
                                          expiresAtMs: .clear, expiresInDays: 7, contentLoggingDisabled: false),
                   minimal: UpdateKeyRequest()),
        BodySample("KeyListResponse", full: KeyListResponse(keys: [key, keyMinimal]), minimal: KeyListResponse(keys: [])),
        // Billing & credits
        BodySample("BillingResponse",
                   full: BillingResponse(creditsNusd: -5_000, metered: true, monthStartMs: 1_748_736_000_000, projects: [projectSpend], keys: [keySpend]),
                   minimal: BillingResponse(creditsNusd: 0, metered: false, monthStartMs: 1_748_736_000_000, projects: [], keys: [])),
        BodySample("ProjectSpendBody", full: projectSpend, minimal: ProjectSpendBody(projectId: 9, name: "search", spendNusd: 0, monthlyBudgetNusd: nil)),
        BodySample("KeySpendBody", full: keySpend,
                   minimal: KeySpendBody(keyId: 12, projectId: 9, name: "ci", period: "lifetime", spendNusd: 7, maxSpendNusd: nil)),
        BodySample("AddCreditsRequest", full: AddCreditsRequest(amountNusd: -1_000_000_000, metered: true), minimal: AddCreditsRequest(amountNusd: 50_000_000_000)),
        BodySample("CreditsResponse", CreditsResponse(creditsNusd: 49_000_000_000, metered: true)),
        // Live usage (UsageBodies.swift)
        BodySample("RateUsageBody", full: rate, minimal: rateUnlimited),
        BodySample("SpendUsageBody", full: spend, minimal: spendLifetime),
        BodySample("ReservedUsageBody", reserved),
        BodySample("KeyUsageResponse", keyUsage),
        BodySample("ProjectUsageResponse", ProjectUsageResponse(projectId: 9, name: "search", atMs: 1_750_000_000_000, requests: rate, tokens: rate,
                                                                spend: spend, reserved: reserved)),
        BodySample("OrgUsageResponse", OrgUsageResponse(orgId: 3, name: "acme", atMs: 1_750_000_000_000, metered: true, creditsNusd: -5_000,
                                                        requestsUsed: 55, tokensUsed: 20_000, spend: spendLifetime, reserved: reserved)),
        BodySample("TopResponse", full: TopResponse(atMs: 1_750_000_000_000, keys: [topKey], projects: [topProject]),
                   minimal: TopResponse(atMs: 1_750_000_000_000, keys: [], projects: [])),
        BodySample("TopKeyBody", topKey),
        BodySample("HistoryResponse", full: HistoryResponse(from: "2026-11-05", to: "2026-12-04", groupBy: ["day", "key", "model"], rows: [historyRow], totals: historyTotals),
                   minimal: HistoryResponse(from: "2026-12-04", to: "2026-12-04", groupBy: ["day"], rows: [], totals: HistoryRowBody())),
        BodySample("HistoryRowBody", full: historyRow, minimal: historyTotals),
        BodySample("TopProjectBody", topProject),
        // Organization resources
        BodySample("ByokBody", byok),
        BodySample("CreateByokRequest", CreateByokRequest(provider: "openai", name: "prod", secret: "sk-live-xyz9xQz")),
        BodySample("ByokListResponse", full: ByokListResponse(keys: [byok]), minimal: ByokListResponse(keys: [])),
        BodySample("PriceBody", price),
        BodySample("PutPriceRequest", full: PutPriceRequest(inputPerMillionNusd: 2_500_000_000, outputPerMillionNusd: 10_000_000_000, cachedInputPerMillionNusd: 1_250_000_000),
                   minimal: PutPriceRequest(inputPerMillionNusd: 0, outputPerMillionNusd: 0)),
        BodySample("PriceListResponse", full: PriceListResponse(prices: [price]), minimal: PriceListResponse(prices: [])),
        BodySample("SkippedPriceBody", SkippedPriceBody(model: "dall-e-3", reason: "no input_cost_per_token and output_cost_per_token")),
        BodySample("PriceImportResponse", full: PriceImportResponse(imported: 1, skipped: [SkippedPriceBody(model: "x", reason: "y")]),
                   minimal: PriceImportResponse(imported: 0, skipped: [])),
        BodySample("VirtualModelBody", virtualModel),
        BodySample("PutVirtualModelRequest", PutVirtualModelRequest(targets: ["gpt-4o-mini"])),
        BodySample("VirtualModelListResponse", full: VirtualModelListResponse(models: [virtualModel]), minimal: VirtualModelListResponse(models: [])),
        BodySample("McpServerBody", mcp),
        BodySample("McpServerRequest", full: McpServerRequest(name: "search", url: "https://mcp.acme.test/sse"), minimal: McpServerRequest()),
        BodySample("McpServerListResponse", full: McpServerListResponse(servers: [mcp]), minimal: McpServerListResponse(servers: [])),
        BodySample("PromptVersionBody", promptVersion),
        BodySample("PromptBody", full: prompt, minimal: PromptBody(name: "greeter", versions: [])),
        BodySample("PromptRequest", full: PromptRequest(name: "greeter", text: "You are helpful."), minimal: PromptRequest(text: "Be brief.")),
        BodySample("PromptListResponse", full: PromptListResponse(prompts: [PromptSummaryBody(name: "greeter", latestVersion: 2)]), minimal: PromptListResponse(prompts: [])),
        BodySample("PromptSummaryBody", PromptSummaryBody(name: "greeter", latestVersion: 2)),
        // Audit
        BodySample("AuditEntryBody", audit),
        BodySample("AuditResponse", full: AuditResponse(entries: [audit], nextBefore: "1780000000000-3"), minimal: AuditResponse(entries: [])),
        // Errors (JSON.swift)
        BodySample("Error", full: ErrorBody(error: APIErrorDetail(code: "exceeds_cap", message: "tpm 2000000 exceeds the project's 1000000", cap: "project.tpm")),
                   minimal: ErrorBody(error: APIErrorDetail(code: "not_found", message: "no project 7"))),
        BodySample("ErrorDetail", full: APIErrorDetail(code: "exceeds_cap", message: "over the grant", cap: "grant.max_key_spend"),
                   minimal: APIErrorDetail(code: "forbidden", message: "needs billing_and_credits")),
    ]

    static func named(_ name: String) -> BodySample? { all.first { $0.schema == name } }

    /// The component schema that describes a Swift type.
    static func schemaName(ofSwiftType type: String) -> String {
        switch type {
        case "ErrorBody": "Error"
        case "APIErrorDetail": "ErrorDetail"
        default: type
        }
    }
}

// MARK: Helpers

/// The package root, from this file.
private let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

private func encode(_ value: any Encodable) throws -> Data { try APIJSON.encoder().encode(value) }

/// The keys of an encoded object.
private func keys(of data: Data) throws -> Set<String> {
    try Set(#require(JSONValue.parse(data).objectValue, "not a JSON object: \(String(decoding: data, as: UTF8.self))").keys)
}

/// An encoded value with its top-level object changed through Foundation (as a client would build JSON).
private func mutated(_ value: any Encodable, _ change: (inout [String: Any]) -> Void) throws -> Data {
    var object = try #require(JSONSerialization.jsonObject(with: encode(value)) as? [String: Any])
    change(&object)
    return try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
}

/// Stored properties of a sample the Swift type has but the sample leaves unset (nil optional,
/// `.unchanged` patch) or — when `nonEmpty` — leaves as an empty collection.
private func unsetFields(of value: Any, nonEmpty: Bool) -> [String] {
    Mirror(reflecting: value).children.compactMap { child in
        let mirror = Mirror(reflecting: child.value)
        let isUnset = (mirror.displayStyle == .optional && mirror.children.isEmpty)
            || (String(describing: type(of: child.value)).hasPrefix("Patch<") && String(describing: child.value) == "unchanged")
            || (nonEmpty && mirror.displayStyle == .collection && mirror.children.isEmpty)
        return isUnset ? child.label ?? "?" : nil
    }
}

/// Optional (or Patch) stored properties a sample sets.
private func setOptionalFields(of value: Any) -> [String] {
    Mirror(reflecting: value).children.compactMap { child in
        let mirror = Mirror(reflecting: child.value)
        let isSetOptional = (mirror.displayStyle == .optional && !mirror.children.isEmpty)
            || (String(describing: type(of: child.value)).hasPrefix("Patch<") && String(describing: child.value) != "unchanged")
        return isSetOptional ? child.label ?? "?" : nil
    }
}

/// Every `$ref` in a JSON value, with the pointer of the object holding it.
private func references(in value: JSONValue, at pointer: String = "#") -> [(pointer: String, ref: String)] {
    switch value {
    case .object(let o):
        var found: [(String, String)] = o["$ref"]?.stringValue.map { [(pointer, $0)] } ?? []
        for (k, v) in o { found += references(in: v, at: JSONPointer.appending(pointer, k)) }
        return found
    case .array(let a):
        return a.enumerated().flatMap { references(in: $1, at: pointer + "/\($0)") }
    default:
        return []
    }
}

// MARK: The document

@Suite("proto/openapi.json")
struct OpenAPIDocumentTests {
    /// Loaded once for all the (many, parameterized) tests.
    static let shared = Result { try OpenAPIDocument.load() }
    let doc: OpenAPIDocument

    init() throws { doc = try Self.shared.get() }

    @Test("the document loads as OpenAPI 3.1 titled bursar admin API, version 1")
    func loads() throws {
        #expect(doc.root["openapi"] == .string("3.1.0"))
        #expect(doc.root["info"]?["title"] == .string("bursar admin API"))
        #expect(doc.root["info"]?["version"] == .string("1"))
    }

    @Test("every $ref in the document resolves")
    func referencesResolve() {
        let refs = references(in: doc.root)
        #expect(refs.count > 100)
        for (pointer, ref) in refs {
            #expect(JSONPointer.resolve(ref, in: doc.root) != nil, "\(pointer): $ref \(ref) does not resolve")
        }
    }

    @Test("the operations are exactly the route table's (method, path) pairs")
    func coversTheRouteTable() {
        let documented = Set(doc.operations.map { "\($0.method) \($0.template)" })
        let expected = Set(DocumentedRoute.table.map { "\($0.method) \($0.template)" })
        #expect(DocumentedRoute.table.count == 66)
        #expect(doc.operations.count == documented.count, "an operation is listed twice")
        #expect(expected.subtracting(documented).sorted() == [], "in routes.md but not in the document")
        #expect(documented.subtracting(expected).sorted() == [], "in the document but not in routes.md")
    }

    @Test("every operation has a unique operationId, a one-line summary and a description naming its permission", arguments: DocumentedRoute.table)
    func operationMetadata(route: DocumentedRoute) throws {
        let op = try #require(doc.operation(method: route.method, template: route.template))
        let id = try #require(op["operationId"]?.stringValue)
        #expect(!id.isEmpty)
        #expect(doc.operations.filter { doc.operation(method: $0.method, template: $0.template)?["operationId"]?.stringValue == id }.count == 1, "operationId \(id) is not unique")
        let summary = try #require(op["summary"]?.stringValue)
        #expect(!summary.isEmpty && !summary.contains("\n"))
        let description = try #require(op["description"]?.stringValue)
        #expect(description.contains(route.permission), "\(description)")
        if route.permission == DocumentedRoute.ownOrAll {
            #expect(description.contains("manage_all_keys_in_project"))
        }
    }

    @Test("every operation's request body and success response are the route table's", arguments: DocumentedRoute.table)
    func requestAndSuccess(route: DocumentedRoute) throws {
        let op = try #require(doc.operation(method: route.method, template: route.template))
        if route.request == DocumentedRoute.litellmPriceFile {
            // Not a body of ours: LiteLLM's file, an object of objects, read leniently.
            #expect(op["requestBody"]?["required"] == .bool(true))
            let schema = try #require(op["requestBody"]?["content"]?["application/json"]?["schema"])
            #expect(schema["type"] == .string("object"))
            #expect(schema["additionalProperties"]?["type"] == .string("object"))
        } else if let request = route.request {
            #expect(op["requestBody"]?["required"] == .bool(true))
            let schema = try #require(op["requestBody"]?["content"]?["application/json"]?["schema"])
            #expect(schema["$ref"] == .string("#/components/schemas/\(request)"))
        } else {
            #expect(op["requestBody"] == nil)
        }
        let responses = try #require(op["responses"]?.objectValue)
        #expect(responses.keys.filter { $0.hasPrefix("2") } == [String(route.status)], "exactly one success status")
        let success = try #require(responses[String(route.status)])
        #expect(success["description"]?.stringValue?.isEmpty == false)
        if let body = route.response {
            #expect(success["content"]?["application/json"]?["schema"]?["$ref"] == .string("#/components/schemas/\(body)"))
        } else {
            #expect(route.status == 204)
            #expect(success["content"] == nil, "a 204 has no content")
        }
    }

    @Test("every error response is an Error body, and each operation documents the errors it can answer", arguments: DocumentedRoute.table)
    func errorResponses(route: DocumentedRoute) throws {
        let op = try #require(doc.operation(method: route.method, template: route.template))
        let responses = try #require(op["responses"]?.objectValue)
        let errors = Set(responses.keys.filter { !$0.hasPrefix("2") })
        for status in errors {
            #expect(["400", "401", "403", "404", "409", "422", "500", "503"].contains(status), "\(status)")
            let response = try #require(doc.dereference(responses[status]!))
            #expect(response["description"]?.stringValue?.isEmpty == false)
            #expect(response["content"]?.objectValue?.keys.sorted() == ["application/json"])
            #expect(response["content"]?["application/json"]?["schema"] == .object(["$ref": .string("#/components/schemas/Error")]),
                    "\(route.testDescription) \(status)")
        }
        #expect(errors.isSuperset(of: ["500", "503"]))
        #expect(errors.contains("401") == (route.template != "/v1/bootstrap"), "401 on every route but bootstrap")
        if route.request != nil || route.template.contains("{") { #expect(errors.contains("400"), "a body or parameter can be malformed") }
        if route.template.hasPrefix("/v1/orgs/{org}") {
            #expect(errors.contains("404"), "organizations the caller does not belong to answer 404")
            // The operator is refused inside organizations; only GET /v1/orgs/{org} is open to both.
            #expect(errors.contains("403") == (route.template != "/v1/orgs/{org}" || route.method != "GET"))
        }
        if route.template == "/v1/bootstrap" { #expect(errors.contains("409"), "bootstrapping twice is a conflict") }
        if route.template.hasPrefix("/v1/orgs/{org}/members/{user}") { #expect(errors.contains("409"), "last_owner") }
        if ["CreateKeyRequest", "UpdateKeyRequest", "AddProjectMemberRequest", "UpdateProjectMemberRequest"].contains(route.request) {
            #expect(errors.contains("422"), "limits outside the project's caps or the user's grant")
        }
    }

    @Test("bearerAuth (HTTP bearer) applies to every operation; bootstrap alone opts out")
    func security() throws {
        let scheme = try #require(doc.root["components"]?["securitySchemes"]?["bearerAuth"])
        #expect(scheme["type"] == .string("http"))
        #expect(scheme["scheme"] == .string("bearer"))
        #expect(doc.root["security"] == .array([.object(["bearerAuth": .array([])])]))
        for (method, template) in doc.operations {
            let security = doc.operation(method: method, template: template)?["security"]
            // Accepting an invitation works with a token (someone with an account) or without (someone new).
            let expected: JSONValue? = switch template {
            case "/v1/bootstrap": .array([])
            case "/v1/invitations/accept": .array([.object([:]), .object(["bearerAuth": .array([])])])
            default: nil
            }
            #expect(security == expected, "\(method) \(template)")
        }
    }

    @Test("path parameters: ids are unsigned integers, names non-empty strings; audit takes limit 1…1000 (default 100), top 1…100 (default 10)")
    func parameters() throws {
        let parameters = try #require(doc.root["components"]?["parameters"]?.objectValue)
        for id in ["org", "project", "user", "key", "id"] {
            let p = try #require(parameters[id])
            #expect(p["in"] == .string("path") && p["required"] == .bool(true) && p["name"] == .string(id))
            #expect(p["schema"]?["type"] == .string("integer"))
            #expect(p["schema"]?["minimum"] == .number(.signed(0)))
            #expect(p["schema"]?["maximum"] == .number(.unsigned(UInt64.max)), "ids above UInt64.max are refused: say so")
        }
        for name in ["modelName", "promptName"] {
            let p = try #require(parameters[name])
            #expect(p["in"] == .string("path") && p["required"] == .bool(true) && p["name"] == .string("name"))
            #expect(p["schema"]?["type"] == .string("string") && p["schema"]?["minLength"] == .number(.signed(1)))
        }
        #expect(parameters["modelName"]?["schema"]?["maxLength"] == .number(.signed(64)))
        let credential = try #require(parameters["credential"])
        #expect(credential["in"] == .string("path") && credential["required"] == .bool(true) && credential["name"] == .string("credential"))
        #expect(credential["schema"]?["pattern"] == .string("^gw_[0-9a-f]{16}$"))
        #expect(parameters["promptName"]?["schema"]?["maxLength"] == .number(.signed(128)))
        let limit = try #require(parameters["limit"])
        #expect(limit["in"] == .string("query") && limit["required"] == .bool(false))
        #expect(limit["schema"] == .object(["type": .string("integer"), "minimum": .number(.signed(1)), "maximum": .number(.signed(1000)), "default": .number(.signed(100))]))
        let audit = try #require(doc.operation(method: "GET", template: "/v1/orgs/{org}/audit"))
        let auditParameters = try #require(audit["parameters"]?.arrayValue)
        #expect(auditParameters.first == .object(["$ref": .string("#/components/parameters/limit")]))
        #expect(auditParameters.dropFirst().compactMap { $0["name"]?.stringValue } == ["before", "after", "actor", "action", "from_ms", "to_ms"])
        #expect(auditParameters.dropFirst().allSatisfy { $0["in"] == .string("query") && $0["required"] == .bool(false) })
        let topLimit = try #require(parameters["topLimit"])
        #expect(topLimit["in"] == .string("query") && topLimit["required"] == .bool(false) && topLimit["name"] == .string("limit"))
        #expect(topLimit["schema"] == .object(["type": .string("integer"), "minimum": .number(.signed(1)), "maximum": .number(.signed(100)), "default": .number(.signed(10))]))
        let top = try #require(doc.operation(method: "GET", template: "/v1/orgs/{org}/top"))
        #expect(top["parameters"] == .array([.object(["$ref": .string("#/components/parameters/topLimit")])]))
        let history = try #require(doc.operation(method: "GET", template: "/v1/orgs/{org}/usage/history"))
        let historyParameters = try #require(history["parameters"]?.arrayValue)
        #expect(historyParameters.compactMap { $0["name"]?.stringValue } == ["from", "to", "group_by", "project_id", "key_id", "format"])
        #expect(historyParameters.allSatisfy { $0["in"] == .string("query") && $0["required"] == .bool(false) })
        for (method, template) in doc.operations where !template.hasSuffix("/audit") && !template.hasSuffix("/top") && !template.hasSuffix("/usage/history") {
            #expect(doc.operation(method: method, template: template)?["parameters"] == nil, "only audit, top and usage history have query parameters")
        }
    }

    @Test("the Error schema's code enum is exactly APIErrorCode's raw values")
    func errorCodes() throws {
        let codes = try #require(doc.root["components"]?["schemas"]?["ErrorDetail"]?["properties"]?["code"]?["enum"]?.arrayValue)
        #expect(codes.compactMap(\.stringValue) == APIErrorCode.allCases.map(\.rawValue))
    }

    @Test("the component schemas are exactly the body types of Bodies.swift, UsageBodies.swift, HistoryBodies.swift and JSON.swift, each with a sample here")
    func schemasMatchBodyTypes() throws {
        var swiftTypes: [String] = []
        for file in ["Bodies.swift", "UsageBodies.swift", "HistoryBodies.swift", "JSON.swift"] {
            let source = try String(contentsOf: packageRoot.appendingPathComponent("Sources/BursarAPI/\(file)"), encoding: .utf8)
            for line in source.split(separator: "\n") where line.hasPrefix("public struct ") && line.contains("Codable") {
                let name = line.dropFirst("public struct ".count).prefix { $0.isLetter || $0.isNumber || $0 == "_" }
                swiftTypes.append(BodySamples.schemaName(ofSwiftType: String(name)))
            }
        }
        let components = Set(try #require(doc.root["components"]?["schemas"]?.objectValue).keys)
        #expect(swiftTypes.count == Set(swiftTypes).count)
        #expect(Set(swiftTypes).subtracting(components).sorted() == [], "Swift body types without a component schema")
        #expect(components.subtracting(swiftTypes).sorted() == [], "component schemas without a Swift body type")
        #expect(Set(swiftTypes).subtracting(BodySamples.all.map(\.schema)).sorted() == [], "body types without a sample in this file")
        #expect(BodySamples.all.count == Set(BodySamples.all.map(\.schema)).count)
    }

    @Test("closed sets are enums: statuses, roles, periods and kinds, and no other string is")
    func enums() throws {
        let orgRoles = ["owner", "member"], projectRoles = ["admin", "member"], periods = BudgetPeriod.allCases.map(\.rawValue)
        let expected: [String: [String]] = [
            "OrgBody.status": ["active", "suspended"], "OrgBody.role": orgRoles, "MemberBody.role": orgRoles,
            "InviteRequest.role": orgRoles, "MemberRoleRequest.role": orgRoles,
            "ProjectBody.status": ["active", "archived"], "UpdateProjectRequest.status": ["active", "archived"],
            "ProjectBody.role": projectRoles, "ProjectMemberBody.role": projectRoles, "AddProjectMemberRequest.role": projectRoles,
            "UpdateProjectMemberRequest.role": projectRoles,
            "KeyBody.status": ["active", "revoked"],
            "KeyBody.period": periods, "CreateKeyRequest.period": periods, "UpdateKeyRequest.period": periods, "KeySpendBody.period": periods, "SpendUsageBody.period": periods,
            "MeResponse.kind": ["operator", "user"], "TokenInfoResponse.kind": ["operator", "user"],
            "InvitationBody.role": ["owner", "member"],
            "ErrorDetail.code": APIErrorCode.allCases.map(\.rawValue),
        ]
        #expect(periods == ["daily", "weekly", "monthly", "lifetime"])
        var documented: [String: [String]] = [:]
        for (name, schema) in try #require(doc.root["components"]?["schemas"]?.objectValue) {
            for (property, sub) in schema["properties"]?.objectValue ?? [:] {
                if let values = sub["enum"]?.arrayValue { documented["\(name).\(property)"] = values.compactMap(\.stringValue) }
            }
        }
        #expect(documented == expected)
    }

    @Test("every schema is a closed object whose property names are snake_case")
    func schemasAreClosed() throws {
        for (name, schema) in try #require(doc.root["components"]?["schemas"]?.objectValue) {
            #expect(schema["type"] == .string("object"), "\(name)")
            #expect(schema["additionalProperties"] == .bool(false), "\(name)")
            for property in (schema["properties"]?.objectValue ?? [:]).keys {
                #expect(property.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "_" }, "\(name).\(property)")
            }
        }
    }

    // MARK: The Swift types against their schemas

    /// The full sample as a valid request: where the schema says two fields exclude each other
    /// (`not: {required: [a, b]}`), without the second.
    func validFull(_ sample: BodySample) throws -> Data {
        let data = try encode(sample.full)
        guard let exclusive = doc.root["components"]?["schemas"]?[sample.schema]?["not"]?["required"]?.arrayValue?.compactMap(\.stringValue),
              exclusive.count == 2 else { return data }
        return try mutated(sample.full) { $0[exclusive[1]] = nil }
    }

    @Test("a fully-populated sample encoded with APIJSON validates, and its keys are exactly the schema's properties", arguments: BodySamples.all)
    func fullSample(sample: BodySample) throws {
        #expect(unsetFields(of: sample.full, nonEmpty: true) == [], "set every field (and a non-empty array) in the full \(sample.schema) sample")
        let data = try encode(sample.full)
        if try validFull(sample) != data {
            // Every field set includes two that exclude each other: the document refuses that.
            let error = try #require(throws: OpenAPIValidationError.self) { try doc.validate(data, againstSchemaNamed: sample.schema) }
            #expect(error.failures.map(\.kind) == [.not], "\(error)")
        }
        try doc.validate(validFull(sample), againstSchemaNamed: sample.schema)
        let properties = try #require(doc.root["components"]?["schemas"]?[sample.schema]?["properties"]?.objectValue)
        let encodedKeys = try keys(of: data)
        #expect(encodedKeys == Set(properties.keys), "\(String(decoding: data, as: UTF8.self))")
        // Mirror agrees: the encoding has one key per stored property.
        #expect(Mirror(reflecting: sample.full).children.count == properties.count)
    }

    @Test("a minimal sample (every optional nil) validates, and its keys are exactly the schema's required", arguments: BodySamples.all)
    func minimalSample(sample: BodySample) throws {
        #expect(setOptionalFields(of: sample.minimal) == [], "leave every optional unset in the minimal \(sample.schema) sample")
        let data = try encode(sample.minimal)
        if sample.schema == "AddProjectMemberRequest" {
            // Names nobody: the document needs user_id or email (anyOf), as the server does.
            let error = try #require(throws: OpenAPIValidationError.self) { try doc.validate(data, againstSchemaNamed: sample.schema) }
            #expect(error.failures.map(\.kind) == [.anyOf], "\(error)")
        } else {
            try doc.validate(data, againstSchemaNamed: sample.schema)
        }
        let required = try #require(doc.root["components"]?["schemas"]?[sample.schema]?["required"]?.arrayValue).compactMap(\.stringValue)
        let encodedKeys = try keys(of: data)
        #expect(encodedKeys == Set(required), "\(String(decoding: data, as: UTF8.self))")
    }

    @Test("every operation's success response validates with the Swift type's sample", arguments: DocumentedRoute.table)
    func successResponses(route: DocumentedRoute) throws {
        guard let name = route.response else {
            try doc.validateResponse(method: route.method, path: route.samplePath, status: route.status, body: Data())
            return
        }
        let sample = try #require(BodySamples.named(name))
        for value in [sample.full, sample.minimal] {
            try doc.validateResponse(method: route.method, path: route.samplePath, status: route.status, body: encode(value))
        }
    }

    @Test("every operation's request samples validate (POST mcp-servers needs name and url, POST prompts a name)", arguments: DocumentedRoute.table.filter { $0.request != nil })
    func requests(route: DocumentedRoute) throws {
        if route.request == DocumentedRoute.litellmPriceFile {
            let file = Data(#"{"gpt-4o": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05}}"#.utf8)
            try doc.validateRequest(method: route.method, path: route.samplePath, body: file)
            #expect(throws: OpenAPIValidationError.self) { try doc.validateRequest(method: route.method, path: route.samplePath, body: Data("[]".utf8)) }
            return
        }
        let sample = try #require(BodySamples.named(route.request!))
        try doc.validateRequest(method: route.method, path: route.samplePath, body: validFull(sample))
        let minimal = try encode(sample.minimal)
        switch (route.method, route.template) {
        case ("POST", "/v1/orgs/{org}/projects/{project}/members"):
            let error = try #require(throws: OpenAPIValidationError.self) { try doc.validateRequest(method: route.method, path: route.samplePath, body: minimal) }
            #expect(error.failures.map(\.kind) == [.anyOf], "\(error)")
        case ("POST", "/v1/orgs/{org}/mcp-servers"):
            let error = try #require(throws: OpenAPIValidationError.self) { try doc.validateRequest(method: route.method, path: route.samplePath, body: minimal) }
            #expect(error.contains(.required("name"), at: "") && error.contains(.required("url"), at: ""), "\(error)")
        case ("POST", "/v1/orgs/{org}/prompts"):
            let error = try #require(throws: OpenAPIValidationError.self) { try doc.validateRequest(method: route.method, path: route.samplePath, body: minimal) }
            #expect(error.failures.map(\.kind) == [.required("name")], "\(error)")
        default:
            try doc.validateRequest(method: route.method, path: route.samplePath, body: minimal)
        }
    }

    @Test("PATCH bodies: null clears a cap and validates; null is refused where the field is not nullable")
    func patchNulls() throws {
        let clear = try encode(UpdateProjectRequest(rpm: .clear, tpm: .clear, monthlyBudgetNusd: .clear))
        #expect(String(decoding: clear, as: UTF8.self) == #"{"monthly_budget_nusd":null,"rpm":null,"tpm":null}"#)
        try doc.validateRequest(method: "PATCH", path: "/v1/orgs/3/projects/7", body: clear)
        try doc.validateRequest(method: "PATCH", path: "/v1/orgs/3/keys/12", body: encode(UpdateKeyRequest(maxSpendNusd: .clear, expiresAtMs: .clear)))
        try doc.validateRequest(method: "PATCH", path: "/v1/orgs/3/projects/7", body: Data(#"{"rpm":5}"#.utf8))

        let nullName = try #require(throws: OpenAPIValidationError.self) {
            try doc.validateRequest(method: "PATCH", path: "/v1/orgs/3/projects/7", body: Data(#"{"name":null}"#.utf8))
        }
        #expect(nullName.contains(.type, at: "/name"), "\(nullName)")
        let negative = try #require(throws: OpenAPIValidationError.self) {
            try doc.validateRequest(method: "PATCH", path: "/v1/orgs/3/projects/7", body: Data(#"{"tpm":-1}"#.utf8))
        }
        #expect(negative.contains(.minimum, at: "/tpm"), "\(negative)")
        // A response never carries null: absent caps are omitted.
        let project = try mutated(BodySamples.projectMinimal) { $0["rpm"] = NSNull() }
        let error = try #require(throws: OpenAPIValidationError.self) { try doc.validate(project, againstSchemaNamed: "ProjectBody") }
        #expect(error.contains(.type, at: "/rpm"), "\(error)")
    }

    // MARK: The validator refuses what does not conform

    @Test("a missing required property is reported with the object's pointer")
    func missingRequired() throws {
        let key = try mutated(BodySamples.key) { $0["name"] = nil }
        let error = try #require(throws: OpenAPIValidationError.self) { try doc.validate(key, againstSchemaNamed: "KeyBody") }
        #expect(error.failures.map(\.kind) == [.required("name")])
        #expect(error.failures.first?.pointer == "")
        #expect(error.failures.first?.schemaPath == "#/components/schemas/KeyBody/required")

        let bootstrap = try mutated(BootstrapResponse(operatorToken: "op-br-a", organization: BodySamples.org, owner: BodySamples.member, ownerToken: "pat-br-b")) {
            var org = $0["organization"] as! [String: Any]
            org["status"] = nil
            $0["organization"] = org
        }
        let nested = try #require(throws: OpenAPIValidationError.self) {
            try doc.validateResponse(method: "POST", path: "/v1/bootstrap", status: 201, body: bootstrap)
        }
        #expect(nested.failures.map(\.kind) == [.required("status")])
        #expect(nested.failures.first?.pointer == "/organization")
        #expect(nested.description.contains("/organization"), "\(nested)")
    }

    @Test("an extra property is reported with its own pointer (escaped), also inside arrays")
    func extraProperty() throws {
        let key = try mutated(BodySamples.key) { $0["secret"] = "sk-br-leak" }
        let error = try #require(throws: OpenAPIValidationError.self) {
            try doc.validateResponse(method: "GET", path: "/v1/orgs/3/keys/12", status: 200, body: key)
        }
        #expect(error.failures.map(\.kind) == [.additionalProperty("secret")])
        #expect(error.failures.first?.pointer == "/secret")

        let list = Data(#"{"keys":[{"created_at_ms":1,"created_by":7,"display":"d","id":1,"models":[],"name":"n","period":"daily","project_id":9,"status":"active","user_id":8,"content_logging_disabled":false,"a/b~c":1}]}"#.utf8)
        let inArray = try #require(throws: OpenAPIValidationError.self) {
            try doc.validateResponse(method: "GET", path: "/v1/orgs/3/keys", status: 200, body: list)
        }
        #expect(inArray.failures.map(\.pointer) == ["/keys/0/a~1b~0c"])
    }

    @Test("a wrong type, a fraction, a value outside an enum or below a minimum are reported where they are")
    func wrongValues() throws {
        let cases: [(String, Any, ValidationFailure.Kind)] = [
            ("name", 5, .type), ("models", "gpt-4o", .type), ("rpm", 1.5, .type), ("rpm", "60", .type),
            ("status", "deleted", .enumeration), ("period", "hourly", .enumeration), ("id", -1, .minimum), ("tpm", -5, .minimum),
        ]
        for (field, value, kind) in cases {
            let body = try mutated(BodySamples.key) { $0[field] = value }
            let error = try #require(throws: OpenAPIValidationError.self) { try doc.validate(body, againstSchemaNamed: "KeyBody") }
            #expect(error.failures.map(\.kind) == [kind], "\(field) = \(value): \(error)")
            #expect(error.failures.first?.pointer == "/\(field)")
        }
        let badItem = try mutated(BodySamples.key) { $0["models"] = ["gpt-4o", 7] as [Any] }
        let error = try #require(throws: OpenAPIValidationError.self) { try doc.validate(badItem, againstSchemaNamed: "KeyBody") }
        #expect(error.failures.map(\.pointer) == ["/models/1"])
        #expect(error.failures.first?.schemaPath == "#/components/schemas/KeyBody/properties/models/items/type")
        // JSON Schema counts 2.0 as an integer.
        try doc.validate(mutated(BodySamples.key) { $0["rpm"] = 2.0 }, againstSchemaNamed: "KeyBody")
    }

    @Test("a boolean where an integer is expected, and 0 or 1 where a boolean is expected, are type errors")
    func booleansAreNotNumbers() throws {
        for field in ["rpm", "id", "created_at_ms"] {
            for text in ["true", "false"] {
                let body = try mutated(BodySamples.key) { $0[field] = text == "true" }
                let error = try #require(throws: OpenAPIValidationError.self) { try doc.validate(body, againstSchemaNamed: "KeyBody") }
                #expect(error.failures.map(\.kind) == [.type] && error.failures.first?.pointer == "/\(field)", "\(field) = \(text): \(error)")
                #expect(error.failures.first?.message.contains("found boolean") == true)
            }
        }
        for number in ["0", "1"] {
            let text = String(decoding: try encode(BodySamples.key), as: UTF8.self).replacingOccurrences(of: #""content_logging_disabled":true"#, with: #""content_logging_disabled":\#(number)"#)
            #expect(text.contains(#""content_logging_disabled":\#(number)"#))
            let error = try #require(throws: OpenAPIValidationError.self) { try doc.validate(Data(text.utf8), againstSchemaNamed: "KeyBody") }
            #expect(error.failures.map(\.kind) == [.type] && error.failures.first?.pointer == "/content_logging_disabled", "\(error)")
        }
    }

    @Test("JSON booleans and numbers stay apart after JSONSerialization, and integers stay exact")
    func parsing() throws {
        let parsed = try JSONValue.parse(Data("[true,false,0,1,1.0,2.5,-3,18446744073709551615,-9223372036854775808,null]".utf8))
        #expect(parsed == .array([.bool(true), .bool(false), .number(.signed(0)), .number(.signed(1)), .number(.real(1)), .number(.real(2.5)),
                                  .number(.signed(-3)), .number(.unsigned(.max)), .number(.signed(.min)), .null]))
        #expect(parsed.arrayValue?.map(\.typeName) == ["boolean", "boolean", "integer", "integer", "integer", "number", "integer", "integer", "integer", "null"])
        // Booleans are not numbers and numbers are not booleans, even 0 and 1.
        #expect(JSONValue.bool(true) != .number(.signed(1)))
        #expect(JSONValue.bool(false) != .number(.signed(0)))
        // Numbers compare exactly across representations.
        #expect(JSONNumber.compare(.unsigned(.max), .signed(.max)) == .orderedDescending)
        #expect(JSONNumber.compare(.signed(-1), .unsigned(0)) == .orderedAscending)
        #expect(JSONValue.number(.real(5)) == .number(.unsigned(5)))
    }

    @Test("an undocumented status is refused, naming the documented ones")
    func undocumentedStatus() throws {
        for (method, path, status) in [("GET", "/v1/me", 404), ("POST", "/v1/bootstrap", 401), ("GET", "/v1/orgs/3", 403), ("DELETE", "/v1/orgs/3/byok/5", 200), ("GET", "/v1/me", 418)] {
            let body = try encode(ErrorBody(error: APIErrorDetail(code: "not_found", message: "x")))
            let error = try #require(throws: OpenAPIValidationError.self) { try doc.validateResponse(method: method, path: path, status: status, body: body) }
            #expect(error.failures.map(\.kind) == [.undocumentedStatus], "\(error)")
            #expect(error.description.contains("documented:"))
        }
    }

    @Test("error bodies validate against Error, and their code must belong to the status")
    func errorBodies() throws {
        for code in APIErrorCode.allCases {
            let body = try encode(ErrorBody(error: APIErrorDetail(code: code.rawValue, message: "m", cap: code == .exceedsCap ? "project.tpm" : nil)))
            let path = "/v1/orgs/3/projects/7/members"
            if doc.operation(method: "POST", template: "/v1/orgs/{org}/projects/{project}/members")?["responses"]?[String(code.status)] != nil {
                try doc.validateResponse(method: "POST", path: path, status: code.status, body: body)
            }
        }
        let wrong = try encode(ErrorBody(error: APIErrorDetail(code: "forbidden", message: "m")))
        let error = try #require(throws: OpenAPIValidationError.self) { try doc.validateResponse(method: "GET", path: "/v1/orgs/3", status: 404, body: wrong) }
        #expect(error.failures.map(\.kind) == [.errorCodeStatus] && error.failures.first?.pointer == "/error/code", "\(error)")
        let unknown = Data(#"{"error":{"code":"teapot","message":"m"}}"#.utf8)
        let enumError = try #require(throws: OpenAPIValidationError.self) { try doc.validateResponse(method: "GET", path: "/v1/orgs/3", status: 404, body: unknown) }
        #expect(enumError.failures.map(\.kind) == [.enumeration] && enumError.failures.first?.pointer == "/error/code", "\(enumError)")
    }

    @Test("a 204 must be empty; a documented JSON body must be present and JSON")
    func emptyAndNonJSONBodies() throws {
        try doc.validateResponse(method: "DELETE", path: "/v1/orgs/3/projects/7", status: 204, body: Data())
        let withBody = try #require(throws: OpenAPIValidationError.self) {
            try doc.validateResponse(method: "DELETE", path: "/v1/orgs/3/projects/7", status: 204, body: Data("{}".utf8))
        }
        #expect(withBody.failures.map(\.kind) == [.unexpectedBody])
        let empty = try #require(throws: OpenAPIValidationError.self) { try doc.validateResponse(method: "GET", path: "/v1/me", status: 200, body: Data()) }
        #expect(empty.failures.map(\.kind) == [.missing])
        let text = try #require(throws: OpenAPIValidationError.self) { try doc.validateResponse(method: "GET", path: "/v1/me", status: 200, body: Data("ok".utf8)) }
        #expect(text.failures.map(\.kind) == [.notJSON])
    }

    @Test("concrete paths match their templates; unknown paths, methods and trailing slashes are refused")
    func pathMatching() throws {
        try doc.validateResponse(method: "GET", path: "/v1/orgs/3/projects/7", status: 200, body: encode(BodySamples.project))
        try doc.validateResponse(method: "get", path: "/v1/orgs/3/audit?limit=5", status: 200, body: encode(AuditResponse(entries: [BodySamples.audit])))
        try doc.validateResponse(method: "POST", path: "/v1/orgs/3/prompts/greeter/versions", status: 201, body: encode(BodySamples.prompt))
        try doc.validateResponse(method: "POST", path: "/v1/orgs/3/suspend", status: 200, body: encode(BodySamples.orgMinimal))
        for (method, path, kind) in [("GET", "/v1/nope", ValidationFailure.Kind.unknownPath), ("GET", "/v1/orgs/3/", .unknownPath),
                                     ("GET", "/v1/orgs/3/projects/7/keys/1", .unknownPath), ("PUT", "/v1/orgs/3", .unknownMethod),
                                     ("DELETE", "/v1/orgs/3/keys/12", .unknownMethod), ("GET", "v1/me", .unknownPath)] {
            let error = try #require(throws: OpenAPIValidationError.self) { try doc.validateResponse(method: method, path: path, status: 200, body: Data("{}".utf8)) }
            #expect(error.failures.map(\.kind) == [kind], "\(method) \(path): \(error)")
        }
    }

    @Test("request parameters are checked: ids are unsigned integers, limit lies in 1…1000 (audit) or 1…100 (top), unknown query parameters are refused")
    func requestParameters() throws {
        try doc.validateRequest(method: "GET", path: "/v1/orgs/3/audit?limit=1000", body: nil)
        try doc.validateRequest(method: "GET", path: "/v1/orgs/3/audit", body: nil)
        try doc.validateRequest(method: "GET", path: "/v1/orgs/3/top?limit=100", body: nil)
        try doc.validateRequest(method: "GET", path: "/v1/orgs/18446744073709551615/virtual-models/fast-one", body: nil)
        try doc.validateRequest(method: "GET", path: "/v1/orgs/3/prompts/hello%20world", body: nil)
        let cases: [(String, ValidationFailure.Kind, ValidationFailure.Location)] = [
            ("/v1/orgs/abc/projects", .type, .parameter(in: "path", name: "org")),
            ("/v1/orgs/-1", .minimum, .parameter(in: "path", name: "org")),
            // Beyond every JSON integer the validator holds, so not an integer to it; refused either way.
            ("/v1/orgs/18446744073709551616", .type, .parameter(in: "path", name: "org")),
            ("/v1/orgs/3/virtual-models/fast%20one", .pattern, .parameter(in: "path", name: "name")),
            ("/v1/orgs/3/projects/1.5", .type, .parameter(in: "path", name: "project")),
            ("/v1/orgs/3/audit?limit=0", .minimum, .parameter(in: "query", name: "limit")),
            ("/v1/orgs/3/top?limit=101", .maximum, .parameter(in: "query", name: "limit")),
            ("/v1/orgs/3/audit?limit=1001", .maximum, .parameter(in: "query", name: "limit")),
            ("/v1/orgs/3/audit?limit=ten", .type, .parameter(in: "query", name: "limit")),
            ("/v1/orgs/3/audit?limt=10", .unknownParameter, .parameter(in: "query", name: "limt")),
        ]
        for (path, kind, location) in cases {
            let error = try #require(throws: OpenAPIValidationError.self) { try doc.validateRequest(method: "GET", path: path, body: nil) }
            #expect(error.failures.map(\.kind) == [kind] && error.failures.first?.location == location, "\(path): \(error)")
        }
    }

    @Test("request bodies: required ones must be present, none is allowed where none is documented")
    func requestBodies() throws {
        let missing = try #require(throws: OpenAPIValidationError.self) { try doc.validateRequest(method: "POST", path: "/v1/orgs/3/credits", body: nil) }
        #expect(missing.failures.map(\.kind) == [.missing])
        let extra = try #require(throws: OpenAPIValidationError.self) {
            try doc.validateRequest(method: "POST", path: "/v1/orgs/3/keys/12/revoke", body: Data("{}".utf8))
        }
        #expect(extra.failures.map(\.kind) == [.unexpectedBody])
        try doc.validateRequest(method: "POST", path: "/v1/orgs/3/keys/12/revoke", body: Data())
        let wrongRole = try #require(throws: OpenAPIValidationError.self) {
            try doc.validateRequest(method: "PATCH", path: "/v1/orgs/3/members/11", body: encode(MemberRoleRequest(role: "admin")))
        }
        #expect(wrongRole.failures.map(\.kind) == [.enumeration] && wrongRole.failures.first?.pointer == "/role", "org roles are owner/member")
    }

    @Test("several failures are all reported, each with its pointer and schema location")
    func severalFailures() throws {
        let body = Data(#"{"id":true,"name":"n","status":"gone","extra":1}"#.utf8)
        let error = try #require(throws: OpenAPIValidationError.self) { try doc.validateResponse(method: "GET", path: "/v1/orgs/3", status: 200, body: body) }
        let found = Set(error.failures.map { "\($0.pointer ?? "-") \($0.schemaPath)" })
        #expect(found == [
            "/id #/components/schemas/OrgBody/properties/id/type",
            "/status #/components/schemas/OrgBody/properties/status/enum",
            "/extra #/components/schemas/OrgBody/additionalProperties",
        ], "\(error)")
        #expect(error.description.contains("GET /v1/orgs/3 → 200"))
    }

    @Test("a document using a keyword the validator does not implement is refused when loaded")
    func refusesUnsupportedKeywords() throws {
        func document(_ schema: String) -> Data {
            Data(#"{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{},"components":{"schemas":{"A":\#(schema)}}}"#.utf8)
        }
        _ = try OpenAPIDocument(data: document(#"{"type":"object","properties":{"a":{"type":["integer","null"],"minimum":0}},"additionalProperties":false}"#))
        for schema in [#"{"oneOf":[]}"#, #"{"type":"string","pattern":"("}"#, #"{"anyOf":[]}"#, #"{"type":"integer","nullable":true}"#,
                       ##"{"type":"object","properties":{"a":{"$ref":"#/components/schemas/Missing"}}}"##, #"{"type":"int"}"#] {
            #expect(throws: OpenAPIDocumentError.self, "\(schema)") { try OpenAPIDocument(data: document(schema)) }
        }
        #expect(throws: OpenAPIDocumentError.self) {
            try OpenAPIDocument(data: Data(#"{"openapi":"3.0.3","info":{"title":"t","version":"1"},"paths":{}}"#.utf8))
        }
    }
}
