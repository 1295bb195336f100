import BursarAPI
import BursarStore
import BursarWire
import Foundation
import HTTPTypes
import Testing

/// The price table through the admin API (SPEC §13.12): Owners edit it (billing & credits),
/// everyone with access to a project sees its models' prices, and an edit prices the next CHECK.
@Suite("Price table API")
struct PriceAPITests {
    @Test("Owners set, import and remove prices; Members see the prices of their projects' models; others are refused")
    func governed() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            let base = "/v1/orgs/\(w.org)/prices"
            let set = try await h.api.call(.put, base + "/gpt-5.5", token: w.owner.token,
                                           body: PutPriceRequest(inputPerMillionNusd: 2_500_000_000, outputPerMillionNusd: 10_000_000_000))
            #expect(set.status == 200)
            #expect(try set.decode(PriceBody.self).cachedInputPerMillionNusd == 2_500_000_000, "cached input defaults to the input price")
            #expect(try await h.api.call(.put, base + "/other-model", token: w.owner.token,
                                         body: PutPriceRequest(inputPerMillionNusd: 1, outputPerMillionNusd: 2)).status == 200)
            let file = #"{"claude-opus-4.8": {"input_cost_per_token": 1.5e-05, "output_cost_per_token": 7.5e-05, "cache_read_input_token_cost": 1.5e-06}, "dall-e-3": {"output_cost_per_image": 0.04}}"#
            let imported = try await h.api.call(.post, base + "/import", token: w.owner.token, json: file)
            #expect(imported.status == 200)
            let result = try imported.decode(PriceImportResponse.self)
            #expect(result.imported == 1 && result.skipped.map(\.model) == ["dall-e-3"])
            let missing = try await h.api.call(.post, base + "/import?models=gpt-9", token: w.owner.token, json: file)
            #expect(missing.status == 200)
            #expect(try missing.decode(PriceImportResponse.self).skipped == [SkippedPriceBody(model: "gpt-9", reason: "not in the price file")])
            #expect(try await h.api.call(.post, base + "/import?models=", token: w.owner.token, json: file).status == 400)
            let notAnObject = try await h.api.call(.post, base + "/import", token: w.owner.token, json: #"{"a": 1}"#)
            #expect(notAnObject.status == 400 && String(decoding: notAnObject.body, as: UTF8.self).contains("the entry for a is not an object"),
                    "an entry that is not an object, named")

            func models(_ token: String) async throws -> [String] {
                let r = try await h.api.get(base, token)
                #expect(r.status == 200)
                return try r.decode(PriceListResponse.self).prices.map(\.model)
            }
            #expect(try await models(w.owner.token) == ["claude-opus-4.8", "gpt-5.5", "other-model"])
            #expect(try await models(w.member.token) == ["claude-opus-4.8", "gpt-5.5"], "project P's models only")
            #expect(try await models(w.admin.token) == ["claude-opus-4.8", "gpt-5.5"])
            #expect(try await models(w.outsider.token) == [], "no project, no prices")

            for token in [w.admin.token, w.member.token, w.outsider.token] {
                #expect(try await h.api.call(.put, base + "/gpt-5.5", token: token,
                                             body: PutPriceRequest(inputPerMillionNusd: 0, outputPerMillionNusd: 0)).status == 403)
                #expect(try await h.api.call(.delete, base + "/gpt-5.5", token: token).status == 403)
                #expect(try await h.api.call(.post, base + "/import", token: token, json: file).status == 403)
            }
            let tooHigh = try await h.api.call(.put, base + "/gpt-5.5", token: w.owner.token,
                                               body: PutPriceRequest(inputPerMillionNusd: ModelPrice.maxPerMillion + 1, outputPerMillionNusd: 0))
            #expect(tooHigh.status == 400)
            #expect(try await h.api.call(.delete, base + "/other-model", token: w.owner.token).status == 204)
            #expect(try await h.api.call(.delete, base + "/other-model", token: w.owner.token).status == 404)
            #expect(try await models(w.owner.token) == ["claude-opus-4.8", "gpt-5.5"])
            let other = try await h.world()
            #expect(try await h.api.get("/v1/orgs/\(other.org)/prices", w.owner.token).status == 404, "another organization's table is invisible")
        }
    }

    @Test("a price set through the API prices the next CHECK; removing it refuses the model under the project's budget")
    func editsApplyAtTheNextCheck() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            let key = try await h.store.createKey(org: w.org, project: w.p, user: w.member.id, name: "priced", limits: KeyLimits())
            func check() async throws -> CheckResult {
                try await h.check(key.secret, model: "m", tokens: 100_000, cost: CheckRequest.priceFromTable)
            }
            let unpriced = try await check()
            #expect(!unpriced.allowed && unpriced.reason == .priceUnknown, "project P has a budget: never silently free")
            let base = "/v1/orgs/\(w.org)/prices/m"
            #expect(try await h.api.call(.put, base, token: w.owner.token,
                                         body: PutPriceRequest(inputPerMillionNusd: 3_000_000_000, outputPerMillionNusd: 0)).status == 200)
            let priced = try await check()
            #expect(priced.allowed)
            #expect(priced.projectBudgetRemaining == 2_000_000_000_000 - 300_000_000, "100,000 input tokens at $3 per million")
            #expect(try await h.api.call(.delete, base, token: w.owner.token).status == 204)
            #expect(try await check().reason == .priceUnknown)
        }
    }
}
