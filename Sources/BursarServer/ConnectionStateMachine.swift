import BursarWire

/// The life of one data-plane connection as one explicit state, in place of flags set from
/// several callbacks. `DataPlaneConnection` tells it what happened and carries out the action it
/// returns; it does no I/O itself, so every transition is tested on its own
/// (`ConnectionStateMachineTests`).
///
/// A connection serves until one of four things ends it, and each ends it the same way: nothing
/// more is served, every request already accepted is answered, then the connection goes:
/// - the client closes its side (`inputClosed`): close, or, if admissions were answered after
///   the client's FIN, wait `DataPlaneConnection.resetWindow` for a reset that would say the
///   client never read them (they are then released);
/// - bad input or a timeout (`failed`): one ERROR after the last answer, then close;
/// - the server shuts down (`drain`): half-close after the last answer and discard input until
///   the client closes (closing with unread input would make the kernel send RST, which can
///   destroy answers the client has not read yet);
/// - the connection breaks (`broken`, `inactive`): at once; admissions it could not deliver are
///   released.
struct ConnectionStateMachine {
    enum State: Equatable {
        /// Reading frames and answering them.
        case serving
        /// The server is shutting down: nothing more is read; what was received is answered.
        case draining
        /// The client closed its side: what was received is answered, then the connection closes.
        case inputEnded
        /// Bad input or a timeout: nothing more is served; what was accepted is answered, then
        /// the ERROR, then close.
        case failing(ProtocolError)
        /// The input ended and the last answer went out after it carrying admissions: closed
        /// after the reset window unless a reset closes it first.
        case awaitingReset
        /// The last answer went out and the output is closed: input is discarded until the
        /// client closes or the linger passes.
        case lingering
        /// Closed, or being closed: nothing more is written.
        case closed
    }

    /// What the connection must do now.
    enum Action: Equatable {
        case none
        /// Send every answer queued and this ERROR, then close.
        case sendErrorAndClose(ProtocolError)
        /// Send every answer queued, then close.
        case close
        /// Send every answer queued; call `resetWindowPassed` after the reset window.
        case flushAndAwaitReset
        /// Send every answer queued, half-close the output, read and discard until the client
        /// closes or the linger passes.
        case halfCloseAndLinger
    }

    private(set) var state = State.serving
    /// Requests handed to the engine (or answered at once) and not yet answered.
    private(set) var inFlight = 0
    /// Admissions answered after the client closed its side. A client that only half-closed reads
    /// them; one that closed entirely cannot, and its kernel answers them with a reset. Until the
    /// connection is closed they may be orphans.
    private(set) var unconfirmed: [ReservationID] = []

    /// Whether a frame just decoded is served; if not it is dropped unanswered (it came after an
    /// ERROR was due, or after the last answer).
    var serves: Bool {
        switch state {
        case .serving, .draining, .inputEnded: true
        case .failing, .awaitingReset, .lingering, .closed: false
        }
    }

    /// Whether answers may still be written.
    var writable: Bool {
        switch state {
        case .serving, .draining, .inputEnded, .failing, .awaitingReset: true
        case .lingering, .closed: false
        }
    }

    /// Whether the connection's idle and frame timeouts apply (only while it serves normally).
    var timesOut: Bool { state == .serving }

    /// A request was accepted: it will be answered.
    mutating func accepted() { inFlight += 1 }

    /// A request accepted was answered (`admission`: the reservation of an allowed CHECK).
    mutating func answered(admission: ReservationID? = nil) -> Action {
        inFlight -= 1
        if let admission, state == .inputEnded { unconfirmed.append(admission) }
        return whenIdle()
    }

    /// The client closed its side (FIN). Frames received before it have been accepted.
    mutating func inputClosed() -> Action {
        switch state {
        case .serving, .draining:
            state = .inputEnded
            return whenIdle()
        case .lingering:
            state = .closed
            return .close
        case .inputEnded, .failing, .awaitingReset, .closed:
            return .none
        }
    }

    /// Graceful shutdown began.
    mutating func drain() -> Action {
        guard state == .serving else { return .none }
        state = .draining
        return whenIdle()
    }

    /// Bad input or a timeout: the first one is answered, later ones are not.
    mutating func failed(_ error: ProtocolError) -> Action {
        switch state {
        case .serving, .draining, .inputEnded:
            state = .failing(error)
            return whenIdle()
        case .failing, .awaitingReset, .lingering, .closed:
            return .none
        }
    }

    /// The connection cannot go on (an I/O error, or answers unread for the write timeout):
    /// close at once.
    mutating func broken() -> Action {
        guard state != .closed else { return .none }
        state = .closed
        return .close
    }

    /// The linger after the half-close, or the reset window, passed with the connection still
    /// open: close. After the reset window the client has read the admissions (no reset came).
    mutating func waitPassed() -> Action {
        switch state {
        case .awaitingReset:
            unconfirmed.removeAll()
            state = .closed
            return .close
        case .lingering:
            state = .closed
            return .close
        case .serving, .draining, .inputEnded, .failing, .closed:
            return .none
        }
    }

    /// An admission among the answers was not written (the connection closed first): it is
    /// released by the caller, so it is no longer unconfirmed.
    mutating func unwritten(_ reservation: ReservationID) {
        unconfirmed.removeAll { $0 == reservation }
    }

    /// The channel went inactive. Returns the admissions the client may not have read (a reset
    /// closed it in the reset window): the caller releases them.
    mutating func inactive() -> [ReservationID] {
        state = .closed
        defer { unconfirmed = [] }
        return unconfirmed
    }

    private mutating func whenIdle() -> Action {
        guard inFlight == 0 else { return .none }
        switch state {
        case .failing(let error):
            state = .closed
            return .sendErrorAndClose(error)
        case .inputEnded:
            if unconfirmed.isEmpty {
                state = .closed
                return .close
            }
            state = .awaitingReset
            return .flushAndAwaitReset
        case .draining:
            state = .lingering
            return .halfCloseAndLinger
        case .serving, .awaitingReset, .lingering, .closed:
            return .none
        }
    }
}
