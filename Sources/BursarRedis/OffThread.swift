import Foundation

/// Runs a blocking call (a redis-server started and waited for, a child process stopped and
/// reaped) on a thread of its own and returns its result.
///
/// Swift's cooperative pool has about a thread per core: a call that blocks one of them holds up
/// every task waiting for it. On a loaded two-core machine, tests that started their redis-servers
/// on the pool held all of it for seconds.
public func offThread<T: Sendable, E: Error>(_ body: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
    let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, E>, Never>) in
        let thread = Thread {
            do throws(E) {
                continuation.resume(returning: .success(try body()))
            } catch {
                continuation.resume(returning: .failure(error))
            }
        }
        thread.name = "bursar blocking call"
        thread.start()
    }
    return try result.get()
}
