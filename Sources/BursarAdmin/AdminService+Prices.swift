public import BursarAPI
import BursarStore
public import Foundation

/// The organization's price table (SPEC §13.12): Owners edit it (billing & credits); everyone
/// with access to a project sees the prices of the models that project may use.
extension AdminService {
    /// The prices the actor may see: every price for an Owner; for a Member, those of the models
    /// their projects allow (all of them if one of those projects allows every model).
    public func listPrices(_ actor: Actor, _ org: UInt64) async throws -> PriceListResponse {
        try await audited(actor, org: org, "price.list", "org:\(org)", mutation: false) {
            let role = try await orgRole(actor, org)
            let all = try await store.prices(org: org)
            guard role != .owner else { return PriceListResponse(prices: all.map(PriceBody.init)) }
            // The projects the Member may see, as the project list shows them.
            let projects = try await listProjects(actor, org).projects
            if projects.contains(where: { $0.models.isEmpty }) { return PriceListResponse(prices: all.map(PriceBody.init)) }
            let aliases = try await store.virtualModels(org: org)
            let models = Set(projects.flatMap { p in p.models.flatMap { [$0] + (aliases[$0] ?? []) } })
            return PriceListResponse(prices: all.filter { models.contains($0.model) }.map(PriceBody.init))
        }
    }

    /// Creates or replaces a model's price; the next CHECK priced from the table uses it.
    public func putPrice(_ actor: Actor, _ org: UInt64, _ model: String, _ r: PutPriceRequest) async throws -> PriceBody {
        try await audited(actor, org: org, "price.set", "model:\(model)", mutation: true) {
            try await requireOrg(actor, org, .billingAndCredits)
            let price = ModelPrice(
                model: model, input: r.inputPerMillionNusd, output: r.outputPerMillionNusd,
                cachedInput: r.cachedInputPerMillionNusd ?? r.inputPerMillionNusd)
            try await store.setPrices(org: org, [price])
            return PriceBody(price)
        }
    }

    /// Removes a model's price.
    public func deletePrice(_ actor: Actor, _ org: UInt64, _ model: String) async throws {
        try await audited(actor, org: org, "price.remove", "model:\(model)", mutation: true) {
            try await requireOrg(actor, org, .billingAndCredits)
            try await store.deletePrice(org: org, model: model)
        }
    }

    /// Imports prices from a file in LiteLLM's model price format (all of it, or the `only`
    /// models), in one transaction.
    public func importPrices(_ actor: Actor, _ org: UInt64, _ file: Data, only: Set<String>?) async throws -> PriceImportResponse {
        try await audited(actor, org: org, "price.import", "org:\(org)", mutation: true) {
            try await requireOrg(actor, org, .billingAndCredits)
            let parsed = try PriceImport.parseLiteLLM(file, only: only)
            try await store.setPrices(org: org, parsed.imported)
            return PriceImportResponse(
                imported: parsed.imported.count, skipped: parsed.skipped.map { SkippedPriceBody(model: $0.model, reason: $0.reason) })
        }
    }
}

extension PriceBody {
    init(_ p: ModelPrice) {
        self.init(model: p.model, inputPerMillionNusd: p.input, outputPerMillionNusd: p.output, cachedInputPerMillionNusd: p.cachedInput)
    }
}
