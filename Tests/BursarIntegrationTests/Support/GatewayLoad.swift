import BursarClient
import BursarWire
import Foundation
import Synchronization

/// Gateways under load, following the rules SPEC §10 and §11.4 give them, writing what they were
/// told into a `ClientLedger`.
///
/// `lanes` connections are spread evenly over the bursards; each keeps `inFlight` pipelined
/// CHECKs going on a random mix of the world's keys. Every admission is followed, after a short
/// random delay, by a SETTLE (actual usage below the estimate) or a RELEASE. A SETTLE or RELEASE
/// answered `store_unavailable` or `overloaded`, or lost with its connection, is retried with
/// the same reservation id on a connection of another bursard, with a small backoff, until it
/// is `applied`, or `already_settled`/`already_released` after a try whose outcome was unknown.
/// A connection that breaks is made again, to the next bursard that accepts one.
final class GatewayLoad: Sendable {
    struct Configuration: Sendable {
        var lanes = 60
        var inFlight = 3
        /// Of every 1000 admissions, how many are released (the rest are settled).
        var releasePermille = 300
        /// The delay before an admission's SETTLE or RELEASE.
        var followUpDelayMs: ClosedRange<Int> = 0...40
        /// How long a SETTLE or RELEASE is retried before the client gives up (an anomaly).
        var giveUpAfter: Duration = .seconds(60)
    }

    let world: ExactnessWorld
    let ledger: ClientLedger
    let configuration: Configuration
    private let lanes: [ConnectionSlot]
    /// Where retries go: one shared connection per bursard.
    private let retrySlots: [ConnectionSlot]
    private let running = Atomic<Bool>(true)
    private let followUps = Mutex<[Task<Void, Never>]>([])
    private let driver = Mutex<Task<Void, Never>?>(nil)

    init(ports: [Int], world: ExactnessWorld, ledger: ClientLedger, configuration: Configuration = Configuration()) {
        self.world = world
        self.ledger = ledger
        self.configuration = configuration
        lanes = (0..<configuration.lanes).map { ConnectionSlot(ports: ports, preferred: $0 % ports.count) }
        retrySlots = ports.indices.map { ConnectionSlot(ports: ports, preferred: $0) }
    }

    /// Starts every lane.
    func start() {
        let task = Task {
            await withTaskGroup(of: Void.self) { group in
                for lane in self.lanes.indices {
                    for _ in 0..<self.configuration.inFlight { group.addTask { await self.checkLoop(lane) } }
                }
            }
        }
        driver.withLock { $0 = task }
    }

    /// Stops sending CHECKs, waits for those in flight, then for every SETTLE and RELEASE to get
    /// its definitive answer (or be given up), and closes the connections.
    func finish() async {
        running.store(false, ordering: .relaxed)
        await driver.withLock { $0 }?.value
        while let next = followUps.withLock({ $0.popLast() }) { await next.value }
        for slot in lanes + retrySlots { await slot.close() }
    }

    private var isRunning: Bool { running.load(ordering: .relaxed) }

    private func checkLoop(_ lane: Int) async {
        let slot = lanes[lane]
        while isRunning {
            guard let c = await slot.connection() else {
                ledger.unreachable()
                try? await Task.sleep(for: .milliseconds(20))
                continue
            }
            let keyIndex = Int.random(in: world.keys.indices)
            let input = UInt32.random(in: 20...400), maxOutput = UInt32.random(in: 20...600)
            let request = CheckRequest(
                digest: world.keys[keyIndex].digest, model: try! ModelName("gpt-5"), inputTokens: input, maxOutputTokens: maxOutput,
                estimatedCost: Self.cost(input: input, output: maxOutput))
            ledger.checkSent()
            let frame: Frame
            do {
                frame = try await c.request(.check(request)).get()
            } catch {
                ledger.noAnswer()  // §11.4: no answer = not admitted
                await slot.broken(c)
                continue
            }
            guard case .checkResult(let r) = frame.body else {
                ledger.unexpectedAnswer()
                await slot.broken(c)
                continue
            }
            if r.allowed {
                if r.reservation == .none {
                    ledger.anomaly("an admission carried reservation \(r.reservation)")
                }
                ledger.admitted(r.reservation, ClientLedger.Admission(
                    key: keyIndex, tokens: Int64(input) + Int64(maxOutput), estimate: request.estimatedCost, local: r.admittedLocally))
                let task = Task { await self.followUp(lane: lane, r.reservation, request) }
                followUps.withLock { $0.append(task) }
            } else {
                ledger.denied(r.reason)
                // A gateway backs off a little before its next call when the store is unavailable.
                if r.reason == .storeUnavailable || r.reason == .overloaded { try? await Task.sleep(for: .milliseconds(10)) }
            }
        }
    }

    /// nano-USD at made-up prices, so that an estimate (maximum output) bounds the actual cost.
    static func cost(input: UInt32, output: UInt32) -> Int64 { Int64(input) * 250 + Int64(output) * 1_000 }

    private func followUp(lane: Int, _ reservation: ReservationID, _ check: CheckRequest) async {
        try? await Task.sleep(for: .milliseconds(Int64.random(in: Int64(configuration.followUpDelayMs.lowerBound)...Int64(configuration.followUpDelayMs.upperBound))))
        let settle = Int.random(in: 0..<1000) >= configuration.releasePermille
        let output = UInt32.random(in: 0..<check.maxOutputTokens)
        let body: Frame.Body = settle
            ? .settle(SettleRequest(reservation: reservation, inputTokens: check.inputTokens, outputTokens: output, cost: Self.cost(input: check.inputTokens, output: output)))
            : .release(ReleaseRequest(reservation: reservation))
        let outcome: ClientLedger.Settlement = settle ? .settled(tokens: Int64(check.inputTokens) + Int64(output), cost: Self.cost(input: check.inputTokens, output: output)) : .released
        let what = "\(settle ? "SETTLE" : "RELEASE") of \(reservation.hex)"
        let giveUp = ContinuousClock.now + configuration.giveUpAfter
        var attempt = 0
        // Whether an earlier try may have taken effect (store_unavailable, or its connection was lost).
        var mayHaveApplied = false
        while true {
            let slot = attempt == 0 ? lanes[lane] : retrySlots[(lanes[lane].preferred + attempt) % retrySlots.count]
            if let c = await slot.connection() {
                do {
                    let frame = try await c.request(body).get()
                    let status: ReservationStatus
                    switch frame.body {
                    case .settleResult(let r), .releaseResult(let r): status = r.status
                    default:
                        ledger.unexpectedAnswer()
                        await slot.broken(c)
                        status = .storeUnavailable
                    }
                    switch status {
                    case .applied:
                        ledger.settled(reservation, outcome)
                        return
                    case .alreadySettled where settle && mayHaveApplied, .alreadyReleased where !settle && mayHaveApplied:
                        ledger.settled(reservation, outcome)  // the earlier try took effect
                        return
                    case .alreadySettled, .alreadyReleased, .expired, .unknown:
                        ledger.anomaly("\(what) answered \(status) on try \(attempt + 1)\(mayHaveApplied ? "" : " (no earlier try could have applied)")")
                        // What Redis says happened, as far as the answer tells.
                        if status == .alreadySettled && settle { ledger.settled(reservation, outcome) }
                        if status == .alreadyReleased { ledger.settled(reservation, .released) }
                        return
                    case .storeUnavailable:
                        mayHaveApplied = true
                    case .overloaded:
                        break
                    }
                } catch {
                    mayHaveApplied = true
                    await slot.broken(c)
                }
            }
            attempt += 1
            if ContinuousClock.now > giveUp {
                ledger.anomaly("\(what) got no definitive answer in \(configuration.giveUpAfter) (\(attempt) tries)")
                return
            }
            ledger.retried()
            try? await Task.sleep(for: .milliseconds(min(10 * attempt, 200)))
        }
    }
}

/// One client connection of a load, made on first use and again after it breaks: to its
/// preferred bursard, else to the next that accepts a connection.
actor ConnectionSlot {
    let ports: [Int]
    nonisolated let preferred: Int
    private var current: BursarConnection?
    private var connecting: Task<BursarConnection?, Never>?

    init(ports: [Int], preferred: Int) {
        self.ports = ports
        self.preferred = preferred
    }

    /// The open connection, or a new one; nil when no bursard accepts one.
    func connection() async -> BursarConnection? {
        if let current, current.channel.isActive { return current }
        if let connecting { return await connecting.value }
        let ports = self.ports, preferred = self.preferred
        let task = Task<BursarConnection?, Never> {
            for i in ports.indices {
                if let c = try? await BursarConnection.connect(host: "127.0.0.1", port: ports[(preferred + i) % ports.count]) { return c }
            }
            return nil
        }
        connecting = task
        let made = await task.value
        connecting = nil
        if let old = current { await old.close() }
        current = made
        return made
    }

    /// `c` failed: the next `connection()` makes a new one.
    func broken(_ c: BursarConnection) async {
        guard current === c else { return }
        current = nil
        await c.close()
    }

    func close() async {
        await current?.close()
        current = nil
    }
}
