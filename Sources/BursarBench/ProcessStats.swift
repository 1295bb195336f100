import Foundation
import Synchronization

/// CPU time of local processes, from /proc/PID/stat.
enum CPUTime {
    /// User + system seconds of this process (every thread), nil if /proc cannot be read.
    static func ownSeconds() -> Double? { seconds(of: [getpid()]) }

    /// Sum of utime + stime of `pids` in seconds; nil when `pids` is empty or one is unreadable.
    static func seconds(of pids: [Int32]) -> Double? {
        guard !pids.isEmpty else { return nil }
        let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
        var total = 0.0
        for pid in pids {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let paren = stat.lastIndex(of: ")") else { return nil }
            // Fields after the command name start at field 3 (state); utime and stime are fields 14 and 15.
            let fields = stat[stat.index(after: paren)...].split(separator: " ")
            guard fields.count > 12, let u = Double(fields[11]), let s = Double(fields[12]) else { return nil }
            total += (u + s) / ticksPerSecond
        }
        return total
    }
}

/// Resident memory of the target processes over the measured period, KiB (summed over them).
public struct RSSSamples: Sendable, Codable {
    /// At the start of measuring (after the warmup).
    public var startKiB: Int
    /// At the end.
    public var endKiB: Int
    /// Largest sample.
    public var maxKiB: Int

    /// (end − start) / start, percent.
    public var growthPercent: Double { startKiB == 0 ? 0 : Double(endKiB - startKiB) * 100 / Double(startKiB) }
}

/// Samples VmRSS from /proc/PID/status.
final class RSSSampler: Sendable {
    private let pids: [Int32]
    private let state = Mutex<RSSSamples?>(nil)

    init(pids: [Int32]) { self.pids = pids }

    /// Takes a sample; `first` starts the series.
    func sample(first: Bool) {
        guard let kib = Self.residentKiB(of: pids) else { return }
        state.withLock { s in
            if first || s == nil {
                s = RSSSamples(startKiB: kib, endKiB: kib, maxKiB: kib)
            } else {
                s!.endKiB = kib
                s!.maxKiB = max(s!.maxKiB, kib)
            }
        }
    }

    /// The series, nil without target processes.
    var samples: RSSSamples? { state.withLock { $0 } }

    /// Sum of VmRSS of `pids`, KiB; nil when empty or one is unreadable.
    static func residentKiB(of pids: [Int32]) -> Int? {
        guard !pids.isEmpty else { return nil }
        var total = 0
        for pid in pids {
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                  let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
                  let kib = Int(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "") else { return nil }
            total += kib
        }
        return total
    }
}
