import BursarClient
import Foundation
import BursarRedis
@_spi(Testing) import BursarStore
import BursarWire
import Testing

/// The price table (SPEC §13.12): a CHECK or SETTLE without a cost is priced by bursar, in the
/// same atomic step, from the organization's table; a model without a price is never free under
/// a money limit.
@Suite("The price table against real Redis")
struct PricingTests {
    /// $2.50 per million input tokens, $10 per million output, $1.25 per million cached input.
    static let price = ModelPrice(model: "gpt-5", input: 2_500_000_000, output: 10_000_000_000, cachedInput: 1_250_000_000)

    func reservation(_ h: Harness, _ r: CheckResult) async throws -> ReservationRecord {
        try #require(ReservationRecord(reply: try await h.redis.send(
            RedisCommand("GET", try h.recordKey(r)))))
    }

    @Test("a CHECK without a cost reserves input and maximum output at the table's prices; its SETTLE pays the actual usage at the same prices")
    func pricedCheckAndSettle() async throws {
        try await withHarness { h in
            let w = try await h.world(limits: KeyLimits(budget: 1_000_000_000, period: .daily))
            try await h.store.setPrices(org: w.org.id, [Self.price])
            let c = try await h.connect()
            let r = try await c.check(.make(w.digest, input: 1_000, output: 500, cost: CheckRequest.priceFromTable))
            #expect(r.allowed)
            // 1,000 × $2.50/M + 500 × $10/M = $0.0025 + $0.005.
            #expect(try await reservation(h, r).cost == 7_500_000)
            #expect(r.keyBudgetRemaining == 1_000_000_000 - 7_500_000)
            let s = try await c.settle(SettleRequest(reservation: r.reservation, inputTokens: 800, outputTokens: 300, cost: CheckRequest.priceFromTable))
            #expect(s.status == .applied && s.costDelta == 5_000_000 - 7_500_000)
            let settled = try await reservation(h, r)
            #expect(settled.actualCost == 5_000_000 && settled.actualTokens == 1_100)
            let again = try await c.settle(SettleRequest(reservation: r.reservation, inputTokens: 800, outputTokens: 300, cost: CheckRequest.priceFromTable))
            #expect(again.status == .alreadySettled && again.costDelta == 0, "exactly once")
            let usage = try await UsageReader(redis: h.redis, clock: .testFrozen).key(org: w.org.id, w.key.key.id)
            #expect(usage?.spend.spent == 5_000_000)
            await c.close()
        }
    }

    @Test("a price changed between a CHECK and its SETTLE applies from the next CHECK: the SETTLE pays what its CHECK was priced at")
    func editsApplyToTheNextRequest() async throws {
        try await withHarness { h in
            let w = try await h.world()
            try await h.store.setPrices(org: w.org.id, [Self.price])
            let c = try await h.connect()
            let first = try await c.check(.make(w.digest, input: 1_000_000, output: 0, cost: CheckRequest.priceFromTable))
            #expect(try await reservation(h, first).cost == 2_500_000_000)
            var doubled = Self.price
            doubled.input *= 2
            try await h.store.setPrices(org: w.org.id, [doubled])
            let second = try await c.check(.make(w.digest, input: 1_000_000, output: 0, cost: CheckRequest.priceFromTable))
            #expect(try await reservation(h, second).cost == 5_000_000_000, "the next CHECK reads the new price")
            let s = try await c.settle(SettleRequest(reservation: first.reservation, inputTokens: 1_000_000, outputTokens: 0, cost: CheckRequest.priceFromTable))
            #expect(s.costDelta == 0, "the first request pays the price it was admitted at")
            try await h.store.deletePrice(org: w.org.id, model: "gpt-5")
            let third = try await c.check(.make(w.digest, input: 1_000_000, output: 0, cost: CheckRequest.priceFromTable))
            #expect(third.allowed, "no money limit: an unpriced model is admitted")
            #expect(try await reservation(h, third).cost == 0)
            await c.close()
        }
    }

    @Test("a model without a price is refused price_unknown under a key budget, a project budget or metered credits, and nothing moves")
    func unpricedUnderAMoneyLimit() async throws {
        try await withHarness { h in
            let worlds = [
                try await h.world(limits: KeyLimits(budget: 1_000_000_000, period: .monthly, rpm: 100)),
                try await h.world(project: ([], nil, nil, 1_000_000_000), limits: KeyLimits(rpm: 100)),
                try await h.world(metered: true, credits: 1_000_000_000, limits: KeyLimits(rpm: 100)),
            ]
            let c = try await h.connect()
            for w in worlds {
                try await h.store.setPrices(org: w.org.id, [Self.price])
                let r = try await c.check(.make(w.digest, model: "gpt-6", cost: CheckRequest.priceFromTable))
                #expect(!r.allowed && r.reason == .priceUnknown)
                #expect(try await h.redis.send(RedisCommand("GET", Keyspace.buckets(w.org.id, scope: "k", id: w.key.key.id))).isNull,
                        "no request counted")
                let usage = try await UsageReader(redis: h.redis, clock: .testFrozen).key(org: w.org.id, w.key.key.id)
                #expect(usage?.spend.spent == 0)
                // The same request with its own cost is the gateway's to price: admitted.
                #expect(try await c.check(.make(w.digest, model: "gpt-6", cost: 1_000)).allowed)
                // And a priced model is admitted without a cost.
                #expect(try await c.check(.make(w.digest, model: "gpt-5", cost: CheckRequest.priceFromTable)).allowed)
            }
            await c.close()
        }
    }

    @Test("the scripts price exactly as ModelPrice does: each kind of token rounded up on its own, capped at 2^53 − 1")
    func scriptsAgreeWithTheFormula() async throws {
        try await withHarness { h in
            let w = try await h.world()
            let c = try await h.connect()
            var rng = SystemRandomNumberGenerator()
            let tokens: [UInt32] = [0, 1, 3, 999_999, 1_000_001, 123_456_789, UInt32.max]
            let prices: [Int64] = [0, 1, 7, 999_999, 1_000_001, 2_500_000_000, 60_000_000_123, ModelPrice.maxPerMillion]
            for _ in 0..<40 {
                let p = ModelPrice(model: "m", input: prices.randomElement(using: &rng)!, output: prices.randomElement(using: &rng)!, cachedInput: 0)
                try await h.store.setPrices(org: w.org.id, [p])
                let input = tokens.randomElement(using: &rng)!, output = tokens.randomElement(using: &rng)!
                let r = try await c.check(.make(w.digest, model: "m", input: input, output: output, cost: CheckRequest.priceFromTable))
                #expect(r.allowed)
                let expected = p.cost(input: Int64(input), output: Int64(output))
                #expect(try await reservation(h, r).cost == expected, "\(p) × \(input)/\(output)")
                let settleIn = tokens.randomElement(using: &rng)!, settleOut = tokens.randomElement(using: &rng)!
                _ = try await c.settle(SettleRequest(reservation: r.reservation, inputTokens: settleIn, outputTokens: settleOut, cost: CheckRequest.priceFromTable))
                #expect(try await reservation(h, r).actualCost == p.cost(input: Int64(settleIn), output: Int64(settleOut)))
            }
            #expect(ModelPrice.part(tokens: 3, perMillion: 1) == 1, "rounded up")
            #expect(ModelPrice.part(tokens: 2_000_000, perMillion: 3) == 6)
            #expect(ModelPrice.part(tokens: Int64(UInt32.max), perMillion: ModelPrice.maxPerMillion) == maxExactValue)
            await c.close()
        }
    }

    @Test("a SETTLE without a cost of a reservation its gateway priced keeps the estimate as the cost")
    func unpricedReservationKeepsItsEstimate() async throws {
        try await withHarness { h in
            let w = try await h.world()
            try await h.store.setPrices(org: w.org.id, [Self.price])
            let c = try await h.connect()
            let r = try await c.check(.make(w.digest, input: 10, output: 10, cost: 4_321))
            let s = try await c.settle(SettleRequest(reservation: r.reservation, inputTokens: 5, outputTokens: 5, cost: CheckRequest.priceFromTable))
            #expect(s.status == .applied && s.costDelta == 0)
            #expect(try await reservation(h, r).actualCost == 4_321)
            await c.close()
        }
    }
}

@Suite("LiteLLM price files")
struct PriceImportTests {
    @Test("per-token USD prices become nano-USD per million tokens; entries without them are skipped with a reason")
    func parse() throws {
        let file = """
            {"sample_spec": {"input_cost_per_token": "set to 0 if free", "output_cost_per_token": 0.0},
             "gpt-4o": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05, "cache_read_input_token_cost": 1.25e-06, "litellm_provider": "openai"},
             "tiny": {"input_cost_per_token": 1.5e-08, "output_cost_per_token": 6e-08},
             "dall-e-3": {"output_cost_per_image": 0.04},
             "has space": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06}}
            """
        let parsed = try PriceImport.parseLiteLLM(Data(file.utf8))
        #expect(parsed.imported == [
            ModelPrice(model: "gpt-4o", input: 2_500_000_000, output: 10_000_000_000, cachedInput: 1_250_000_000),
            ModelPrice(model: "tiny", input: 15_000_000, output: 60_000_000, cachedInput: 15_000_000),
        ])
        #expect(parsed.skipped.map(\.model) == ["dall-e-3", "has space", "sample_spec"])
        #expect(try PriceImport.parseLiteLLM(Data(file.utf8), only: ["tiny"]).imported.map(\.model) == ["tiny"])
        #expect(throws: StoreError.self) { try PriceImport.parseLiteLLM(Data("[1, 2]".utf8)) }
        #expect(throws: StoreError.self) { try PriceImport.parseLiteLLM(Data(#"{"a": 1}"#.utf8)) }
        #expect(try PriceImport.parseLiteLLM(Data(file.utf8), only: ["tiny", "gpt-9"]).skipped.map(\.model) == ["gpt-9"])
    }
}
