public import BursarAPI
import BursarRBAC
import BursarStore

/// Organization resources: Owners only. Each operation is one governed action of the matrix.
extension AdminService {
    /// Runs an Owners-only operation on an organization resource, audited.
    private func owners<T>(_ actor: Actor, _ org: UInt64, _ action: Action, _ name: String, _ target: String, mutation: Bool, _ body: () async throws -> T) async throws -> T {
        try await audited(actor, org: org, name, target, mutation: mutation) {
            try await requireOrg(actor, org, action)
            return try await body()
        }
    }

    // MARK: BYOK

    public func listByok(_ actor: Actor, _ org: UInt64) async throws -> ByokListResponse {
        try await owners(actor, org, .externalKeysBYOK, "byok.list", "org:\(org)", mutation: false) {
            ByokListResponse(keys: try await store.providerKeys(org: org).map {
                ByokBody(id: $0.id, provider: $0.provider, name: $0.name, display: $0.display, createdAtMs: $0.createdAtMs)
            })
        }
    }

    public func addByok(_ actor: Actor, _ org: UInt64, _ r: CreateByokRequest) async throws -> ByokBody {
        try await owners(actor, org, .externalKeysBYOK, "byok.add", "provider:\(r.provider)", mutation: true) {
            let k = try await store.addProviderKey(org: org, provider: r.provider, name: r.name, secret: r.secret)
            return ByokBody(id: k.id, provider: k.provider, name: k.name, display: k.display, createdAtMs: k.createdAtMs)
        }
    }

    public func deleteByok(_ actor: Actor, _ org: UInt64, _ id: UInt64) async throws {
        try await owners(actor, org, .externalKeysBYOK, "byok.remove", "byok:\(id)", mutation: true) {
            try await store.deleteProviderKey(org: org, id)
        }
    }

    // MARK: Virtual models

    public func listVirtualModels(_ actor: Actor, _ org: UInt64) async throws -> VirtualModelListResponse {
        try await owners(actor, org, .virtualModels, "virtual_model.list", "org:\(org)", mutation: false) {
            let all = try await store.virtualModels(org: org)
            return VirtualModelListResponse(models: all.keys.sorted().map { VirtualModelBody(name: $0, targets: all[$0]!) })
        }
    }

    public func getVirtualModel(_ actor: Actor, _ org: UInt64, _ name: String) async throws -> VirtualModelBody {
        try await owners(actor, org, .virtualModels, "virtual_model.show", "virtual_model:\(name)", mutation: false) {
            guard let targets = try await store.virtualModels(org: org)[name] else { throw APIError.notFound("virtual model \(name)") }
            return VirtualModelBody(name: name, targets: targets)
        }
    }

    public func putVirtualModel(_ actor: Actor, _ org: UInt64, _ name: String, _ r: PutVirtualModelRequest) async throws -> VirtualModelBody {
        try await owners(actor, org, .virtualModels, "virtual_model.set", "virtual_model:\(name)", mutation: true) {
            try await store.setVirtualModel(org: org, name: name, targets: r.targets)
            return VirtualModelBody(name: name, targets: try await store.virtualModels(org: org)[name] ?? r.targets)
        }
    }

    public func deleteVirtualModel(_ actor: Actor, _ org: UInt64, _ name: String) async throws {
        try await owners(actor, org, .virtualModels, "virtual_model.remove", "virtual_model:\(name)", mutation: true) {
            try await store.deleteVirtualModel(org: org, name: name)
        }
    }

    // MARK: MCP servers

    public func listMcp(_ actor: Actor, _ org: UInt64) async throws -> McpServerListResponse {
        try await owners(actor, org, .mcpServers, "mcp.list", "org:\(org)", mutation: false) {
            McpServerListResponse(servers: try await store.mcpServers(org: org).map { McpServerBody(id: $0.id, name: $0.name, url: $0.url) })
        }
    }

    public func getMcp(_ actor: Actor, _ org: UInt64, _ id: UInt64) async throws -> McpServerBody {
        try await owners(actor, org, .mcpServers, "mcp.show", "mcp:\(id)", mutation: false) {
            guard let s = try await store.mcpServer(org: org, id) else { throw APIError.notFound("MCP server \(id)") }
            return McpServerBody(id: s.id, name: s.name, url: s.url)
        }
    }

    public func addMcp(_ actor: Actor, _ org: UInt64, _ r: McpServerRequest) async throws -> McpServerBody {
        try await owners(actor, org, .mcpServers, "mcp.add", "name:\(r.name ?? "")", mutation: true) {
            guard let name = r.name, let url = r.url else { throw APIError(.invalid, "name and url are required") }
            let s = try await store.addMCPServer(org: org, name: name, url: url)
            return McpServerBody(id: s.id, name: s.name, url: s.url)
        }
    }

    public func updateMcp(_ actor: Actor, _ org: UInt64, _ id: UInt64, _ r: McpServerRequest) async throws -> McpServerBody {
        try await owners(actor, org, .mcpServers, "mcp.update", "mcp:\(id)", mutation: true) {
            let s = try await store.updateMCPServer(org: org, id, name: r.name, url: r.url)
            return McpServerBody(id: s.id, name: s.name, url: s.url)
        }
    }

    public func deleteMcp(_ actor: Actor, _ org: UInt64, _ id: UInt64) async throws {
        try await owners(actor, org, .mcpServers, "mcp.remove", "mcp:\(id)", mutation: true) {
            try await store.deleteMCPServer(org: org, id)
        }
    }

    // MARK: Prompts

    public func listPrompts(_ actor: Actor, _ org: UInt64) async throws -> PromptListResponse {
        try await owners(actor, org, .promptManagement, "prompt.list", "org:\(org)", mutation: false) {
            PromptListResponse(prompts: try await store.prompts(org: org).map { PromptSummaryBody(name: $0.name, latestVersion: $0.latest) })
        }
    }

    public func getPrompt(_ actor: Actor, _ org: UInt64, _ name: String) async throws -> PromptBody {
        try await owners(actor, org, .promptManagement, "prompt.show", "prompt:\(name)", mutation: false) {
            try await promptBody(org, name)
        }
    }

    public func createPrompt(_ actor: Actor, _ org: UInt64, _ r: PromptRequest) async throws -> PromptBody {
        try await owners(actor, org, .promptManagement, "prompt.create", "prompt:\(r.name ?? "")", mutation: true) {
            guard let name = r.name else { throw APIError(.invalid, "name is required") }
            try await store.addPromptVersion(org: org, name: name, text: r.text, by: actor.userID!, create: true)
            return try await promptBody(org, name)
        }
    }

    public func addPromptVersion(_ actor: Actor, _ org: UInt64, _ name: String, _ r: PromptRequest) async throws -> PromptBody {
        try await owners(actor, org, .promptManagement, "prompt.version", "prompt:\(name)", mutation: true) {
            // `name` is ignored here, but must still be a valid name when given (the document's rule).
            if let given = r.name { try MetadataStore.checkName(given, "prompt name") }
            try await store.addPromptVersion(org: org, name: name, text: r.text, by: actor.userID!, create: false)
            return try await promptBody(org, name)
        }
    }

    public func deletePrompt(_ actor: Actor, _ org: UInt64, _ name: String) async throws {
        try await owners(actor, org, .promptManagement, "prompt.remove", "prompt:\(name)", mutation: true) {
            try await store.deletePrompt(org: org, name: name)
        }
    }

    private func promptBody(_ org: UInt64, _ name: String) async throws -> PromptBody {
        guard let versions = try await store.prompt(org: org, name: name) else { throw APIError.notFound("prompt \(name)") }
        return PromptBody(name: name, versions: versions.map {
            PromptVersionBody(version: $0.version, text: $0.text, createdAtMs: $0.createdAtMs, createdBy: $0.createdBy)
        })
    }
}
