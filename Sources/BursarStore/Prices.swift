import BursarRedis
public import BursarWire
public import Foundation

/// A model's price in an organization's price table (SPEC §13.12): nano-USD per million tokens
/// of input, output and cached input. Integers, as all money is.
public struct ModelPrice: Sendable, Hashable {
    /// The model, as requests name it.
    public var model: String
    /// Nano-USD per million input tokens.
    public var input: NanoUSD
    /// Nano-USD per million output tokens.
    public var output: NanoUSD
    /// Nano-USD per million cached input tokens (cache reads).
    public var cachedInput: NanoUSD

    /// The highest price per million tokens a table holds: 10¹⁵ nano-USD, a million USD.
    public static let maxPerMillion: NanoUSD = 1_000_000_000_000_000

    public init(model: String, input: NanoUSD, output: NanoUSD, cachedInput: NanoUSD) {
        self.model = model
        self.input = input
        self.output = output
        self.cachedInput = cachedInput
    }

    /// What `tokens` cost at `perMillion`: ⌈tokens × perMillion / 10⁶⌉ nano-USD, at most 2⁵³ − 1.
    /// Each kind of token is priced on its own and rounded up; a request's cost is the sum
    /// (`cost(input:output:cachedInput:)`). The CHECK and SETTLE scripts compute the same.
    public static func part(tokens: Int64, perMillion: NanoUSD) -> NanoUSD {
        guard tokens > 0, perMillion > 0 else { return 0 }
        let q = perMillion / 1_000_000, r = perMillion % 1_000_000
        let (whole, overflow) = tokens.multipliedReportingOverflow(by: q)
        guard !overflow, whole <= maxExactValue else { return maxExactValue }
        let fraction = (tokens * r + 999_999) / 1_000_000
        return min(whole + fraction, maxExactValue)
    }

    /// A request's cost: each kind of token priced by `part`, summed, at most 2⁵³ − 1.
    public func cost(input inputTokens: Int64, output outputTokens: Int64, cachedInput cachedTokens: Int64 = 0) -> NanoUSD {
        let sum = Self.part(tokens: inputTokens, perMillion: input) + Self.part(tokens: outputTokens, perMillion: output)
            + Self.part(tokens: cachedTokens, perMillion: cachedInput)
        return min(sum, maxExactValue)
    }

    /// The stored form: "input output cached" (decimal).
    var stored: String { "\(input) \(output) \(cachedInput)" }

    init?(model: String, stored: String) {
        let f = stored.split(separator: " ").compactMap { Int64($0) }
        guard f.count == 3 else { return nil }
        self.init(model: model, input: f[0], output: f[1], cachedInput: f[2])
    }

    /// Throws `StoreError.invalid` naming what is wrong.
    func validate() throws {
        try MetadataStore.checkModel(model, "price")
        for (name, value) in [("input", input), ("output", output), ("cached input", cachedInput)] {
            guard (0...Self.maxPerMillion).contains(value) else {
                throw StoreError.invalid("price of \(model): \(name) must be 0…\(Self.maxPerMillion) nano-USD per million tokens, not \(value)")
            }
        }
    }
}

/// What an import of a LiteLLM price file did.
public struct PriceImport: Sendable, Hashable {
    /// The prices written (created or replaced).
    public var imported: [ModelPrice]
    /// Entries left out, each with why (no per-token prices, a name bursar cannot hold…).
    public var skipped: [(model: String, reason: String)]

    public static func == (a: PriceImport, b: PriceImport) -> Bool {
        a.imported == b.imported && a.skipped.map(\.model) == b.skipped.map(\.model) && a.skipped.map(\.reason) == b.skipped.map(\.reason)
    }
    public func hash(into h: inout Hasher) { h.combine(imported) }
}

extension PriceImport {
    /// Reads LiteLLM's model price file (`model_prices_and_context_window.json`): an object from
    /// model name to an object whose `input_cost_per_token` and `output_cost_per_token` are USD per
    /// token and whose optional `cache_read_input_token_cost` is USD per cached input token (absent:
    /// the input price). Prices become nano-USD per million tokens, rounded to the nearest whole
    /// nano-USD. Entries without both per-token prices (images, audio, the file's `sample_spec`…)
    /// and names bursar cannot hold are skipped, each with its reason. `only`, when given, keeps
    /// the named models.
    public static func parseLiteLLM(_ data: Data, only: Set<String>? = nil) throws -> PriceImport {
        // An object whose every entry is an object (what the document states); an entry's fields
        // are read leniently (`LiteLLMEntry`).
        let models: [String: LiteLLMEntry]
        do {
            models = try JSONDecoder().decode([String: LiteLLMEntry].self, from: data)
        } catch DecodingError.typeMismatch(_, let context) where context.codingPath.count == 1 {
            throw StoreError.invalid("price file: the entry for \(context.codingPath[0].stringValue) is not an object")
        } catch {
            throw StoreError.invalid("price file must be a JSON object from model name to its prices (LiteLLM's model_prices_and_context_window.json)")
        }
        var result = PriceImport(imported: [], skipped: [])
        for name in (only ?? []).subtracting(models.keys).sorted() {
            result.skipped.append((name, "not in the price file"))
        }
        for name in models.keys.sorted() {
            if let only, !only.contains(name) { continue }
            let entry = models[name]!
            guard let input = perMillion(entry.input), let output = perMillion(entry.output) else {
                result.skipped.append((name, "no input_cost_per_token and output_cost_per_token (USD per token, numbers ≥ 0)"))
                continue
            }
            let cached = entry.cacheRead.flatMap(perMillion) ?? input
            let price = ModelPrice(model: name, input: input, output: output, cachedInput: cached)
            do {
                try price.validate()
            } catch {
                result.skipped.append((name, "\(error)"))
                continue
            }
            result.imported.append(price)
        }
        return result
    }

    /// One entry of the file, which must be an object: only its per-token prices are read; a field
    /// of another type reads as absent.
    private struct LiteLLMEntry: Decodable {
        var input: Double?
        var output: Double?
        var cacheRead: Double?
        enum CodingKeys: String, CodingKey {
            case input = "input_cost_per_token", output = "output_cost_per_token", cacheRead = "cache_read_input_token_cost"
        }
        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            input = try? c.decodeIfPresent(Double.self, forKey: .input)
            output = try? c.decodeIfPresent(Double.self, forKey: .output)
            cacheRead = try? c.decodeIfPresent(Double.self, forKey: .cacheRead)
        }
    }

    /// USD per token → nano-USD per million tokens (× 10¹⁵), rounded; nil unless a number ≥ 0.
    private static func perMillion(_ value: Double?) -> NanoUSD? {
        guard let value else { return nil }
        let scaled = (value * 1e15).rounded()
        guard scaled.isFinite, scaled >= 0, scaled <= Double(ModelPrice.maxPerMillion) else { return nil }
        return NanoUSD(scaled)
    }
}

extension MetadataStore {
    // MARK: Prices

    /// The organization's price table, sorted by model.
    public func prices(org: UInt64) async throws -> [ModelPrice] {
        let models = sortedStrings(try await redis.send(RedisCommand("SMEMBERS", Keyspace.priceSet(org))))
        guard !models.isEmpty else { return [] }
        let values = strings(try await redis.send(RedisCommand(["MGET"] + models.map { Keyspace.price(org, $0) })))
        return zip(models, values).compactMap { model, value in value.flatMap { ModelPrice(model: model, stored: $0) } }
    }

    /// One model's price, or nil.
    public func price(org: UInt64, model: String) async throws -> ModelPrice? {
        try await redis.send(RedisCommand("GET", Keyspace.price(org, model))).string.flatMap { ModelPrice(model: model, stored: $0) }
    }

    /// Creates or replaces prices, all in one transaction: the next CHECK priced from the table
    /// reads them.
    public func setPrices(org: UInt64, _ prices: [ModelPrice]) async throws {
        for p in prices { try p.validate() }
        guard !prices.isEmpty else { return }
        var commands: [RedisCommand] = []
        for chunk in stride(from: 0, to: prices.count, by: 512).map({ prices[$0..<min($0 + 512, prices.count)] }) {
            commands.append(RedisCommand(["MSET"] + chunk.flatMap { [Keyspace.price(org, $0.model), $0.stored] }))
            commands.append(RedisCommand(["SADD", Keyspace.priceSet(org)] + chunk.map(\.model)))
        }
        try await transaction(commands)
    }

    /// Removes a model's price: CHECKs priced from the table then find none.
    public func deletePrice(org: UInt64, model: String) async throws {
        let replies = try await redis.send([
            RedisCommand("MULTI"), RedisCommand("DEL", Keyspace.price(org, model)), RedisCommand("SREM", Keyspace.priceSet(org), model),
            RedisCommand("EXEC"),
        ])
        guard let exec = replies.last?.array, exec.first?.int == 1 else { throw StoreError.notFound("price of \(model)") }
    }
}
