import BursarWire
import Testing

@testable import BursarServer

/// Every way a data-plane connection ends, on the state machine alone (the end-to-end behaviour
/// is proven on real bursard processes by `BadInputTests`, `ShutdownTests` and `ResilienceTests`).
@Suite struct ConnectionStateMachineTests {
    typealias Machine = ConnectionStateMachine

    private func reservation(_ sequence: UInt64) -> ReservationID { ReservationID(orgID: 1, sequence: sequence) }

    @Test func servingAnswersWithoutEnding() {
        var m = Machine()
        m.accepted()
        m.accepted()
        #expect(m.inFlight == 2)
        #expect(m.answered() == .none)
        #expect(m.answered(admission: reservation(1)) == .none)
        #expect(m.state == .serving)
        #expect(m.unconfirmed.isEmpty, "an admission answered before the client's FIN is not unconfirmed")
        #expect(m.serves && m.writable && m.timesOut)
    }

    @Test func badInputIsAnsweredAfterEverythingAccepted() {
        let error = ProtocolError(.badMagic, "bad", requestID: 7)
        var m = Machine()
        m.accepted()
        #expect(m.failed(error) == .none, "one request is still in flight: no ERROR before its answer")
        #expect(m.state == .failing(error))
        #expect(!m.serves, "nothing more is served after bad input")
        #expect(m.writable, "the request in flight is still answered")
        #expect(m.failed(ProtocolError(.truncated, "later")) == .none, "only the first error is answered")
        #expect(m.answered() == .sendErrorAndClose(error))
        #expect(m.state == .closed && !m.writable)
    }

    @Test func badInputWithNothingInFlightErrorsAtOnce() {
        let error = ProtocolError(.idleTimeout, "idle")
        var m = Machine()
        #expect(m.failed(error) == .sendErrorAndClose(error))
        #expect(m.state == .closed)
        #expect(m.inputClosed() == .none)
    }

    @Test func inputClosedClosesAfterTheLastAnswer() {
        var m = Machine()
        m.accepted()
        #expect(m.inputClosed() == .none)
        #expect(m.state == .inputEnded)
        #expect(m.serves, "frames decoded before the end are still served")
        #expect(!m.timesOut)
        #expect(m.answered() == .close, "a denial or settle needs no reset window")
        #expect(m.state == .closed)
    }

    @Test func admissionsAfterTheFinWaitForAReset() {
        var m = Machine()
        m.accepted()
        m.accepted()
        _ = m.inputClosed()
        #expect(m.answered(admission: reservation(1)) == .none)
        #expect(m.answered(admission: reservation(2)) == .flushAndAwaitReset)
        #expect(m.state == .awaitingReset)
        #expect(m.unconfirmed == [reservation(1), reservation(2)])
        // One of them was never written (the write failed): released by the caller, not twice.
        m.unwritten(reservation(1))
        // A reset closes it in the window: what is left is released.
        #expect(m.inactive() == [reservation(2)])
        #expect(m.state == .closed)
        #expect(m.waitPassed() == .none)
    }

    @Test func noResetMeansTheClientReadThem() {
        var m = Machine()
        m.accepted()
        _ = m.inputClosed()
        #expect(m.answered(admission: reservation(3)) == .flushAndAwaitReset)
        #expect(m.waitPassed() == .close)
        #expect(m.inactive().isEmpty, "after the window, the admissions were read: nothing released")
    }

    @Test func drainAnswersThenHalfClosesAndLingers() {
        var m = Machine()
        m.accepted()
        #expect(m.drain() == .none)
        #expect(m.state == .draining)
        #expect(m.drain() == .none, "a second drain does nothing")
        #expect(m.answered() == .halfCloseAndLinger)
        #expect(m.state == .lingering)
        #expect(!m.serves && !m.writable, "input after the last answer is discarded")
        #expect(m.inputClosed() == .close, "the client closed: close without waiting out the linger")
        #expect(m.state == .closed)
    }

    @Test func drainWithNothingInFlightLingersAtOnce() {
        var m = Machine()
        #expect(m.drain() == .halfCloseAndLinger)
        #expect(m.waitPassed() == .close, "the linger passed without the client closing")
    }

    @Test func clientClosingDuringADrainClosesAfterTheAnswers() {
        var m = Machine()
        m.accepted()
        _ = m.drain()
        #expect(m.inputClosed() == .none)
        #expect(m.state == .inputEnded)
        #expect(m.answered() == .close)
    }

    @Test func drainDoesNotOverrideAnEnding() {
        var m = Machine()
        m.accepted()
        _ = m.failed(ProtocolError(.badMagic, "x"))
        #expect(m.drain() == .none)
        var n = Machine()
        n.accepted()
        _ = n.inputClosed()
        #expect(n.drain() == .none)
        #expect(n.state == .inputEnded)
    }

    @Test func brokenClosesFromAnyStateOnce() {
        for start in 0..<4 {
            var m = Machine()
            m.accepted()
            switch start {
            case 1: _ = m.drain()
            case 2: _ = m.inputClosed()
            case 3: _ = m.failed(ProtocolError(.badMagic, "x"))
            default: break
            }
            #expect(m.broken() == .close)
            #expect(m.state == .closed && !m.writable)
            #expect(m.broken() == .none)
            #expect(m.answered() == .none, "an answer completing after the close does nothing")
        }
    }
}
