import BursarWire
import NIOCore

/// Reads a connection's request frames from its bytes, in place of NIO's generic
/// `ByteToMessageHandler`: one concrete handler, one cumulation buffer, no decoder generics on the
/// hot path.
///
/// - Every complete frame in what arrived is passed on at once, in order.
/// - On bad input it passes the `ProtocolError` on as an error and reads nothing more.
/// - When the input ends (half-close or close) what is left must be whole frames; bytes of an
///   unfinished frame end as `ProtocolError(.truncated)`.
/// - It notes in `PartialFrameClock` when an incomplete frame began (the frame timeout). A frame
///   is never buffered past its maximum size: the decoder checks the header first.
final class FrameReader: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = Frame

    private var decoder = FrameDecoder(direction: .toServer)
    private let clock: PartialFrameClock
    /// Bytes received and not yet decoded.
    private var buffer: ByteBuffer?
    /// A decode threw: nothing more is read.
    private var failed = false
    /// The input ended: what is left was decoded as the last of it.
    private var ended = false
    /// Inside `decodeFrames` (a frame passed on may close the channel, which ends the input).
    private var decoding = false
    /// The input ended while decoding: the last decode runs when the current one returns.
    private var endPending = false

    init(clock: PartialFrameClock) { self.clock = clock }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed, !ended else { return }
        var incoming = unwrapInboundIn(data)
        if var held = buffer, held.readableBytes > 0 {
            buffer = nil  // unique again, so the write below does not copy what is held
            held.writeBuffer(&incoming)
            buffer = held
        } else {
            buffer = incoming
        }
        decodeFrames(context: context, last: false)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .some(ChannelEvent.inputClosed) = event as? ChannelEvent { endInput(context: context) }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        endInput(context: context)
        context.fireChannelInactive()
    }

    private func endInput(context: ChannelHandlerContext) {
        guard !ended else { return }
        ended = true
        if decoding {
            endPending = true
        } else {
            decodeFrames(context: context, last: true)
        }
    }

    private func decodeFrames(context: ChannelHandlerContext, last: Bool) {
        guard !failed, var bytes = buffer else { return }
        buffer = nil
        decoding = true
        defer { decoding = false }
        var decodedAny = false
        while !failed {
            let frame: Frame?
            do {
                frame = last ? try decoder.decodeLast(buffer: &bytes, seenEOF: true) : try decoder.decode(buffer: &bytes)
            } catch {
                failed = true
                clock.since = nil
                context.fireErrorCaught(error)
                return
            }
            guard let frame else { break }
            decodedAny = true
            context.fireChannelRead(wrapInboundOut(frame))
        }
        if bytes.readableBytes == 0 {
            clock.since = nil
            bytes.clear()
        } else {
            // An unfinished frame: its clock starts with its first byte, which came in this read
            // if a frame before it was completed here.
            if decodedAny || clock.since == nil { clock.since = .now() }
            if bytes.readerIndex >= 16_384 { bytes.discardReadBytes() }
        }
        buffer = bytes
        if endPending && !last {
            endPending = false
            decoding = false
            decodeFrames(context: context, last: true)
        }
    }
}

/// Writes a connection's answer frames, in place of NIO's generic `MessageToByteHandler`: every
/// frame written between two flushes is encoded into one buffer, handed to the channel as one
/// write (one `write(2)`, not one iovec and one allocation per frame). A write with a promise
/// (the last ERROR before a close) goes out with everything before it at once.
///
/// It also tells `onAdmissions` what became of the admissions (allowed CHECK_RESULTs) it wrote:
/// written to the socket, or not, because the connection closed first. One promise per hand-over
/// that carries admissions, whoever flushes (the connection's handler, its drain at shutdown, a
/// close); admissions never handed over are reported unwritten when the channel goes inactive,
/// before the handlers after this one see it.
final class FrameWriter: ChannelDuplexHandler {
    typealias InboundIn = Frame
    typealias OutboundIn = Frame
    typealias OutboundOut = ByteBuffer
    /// `written`: the admissions' bytes are in the socket.
    typealias AdmissionsOutcome = (_ admissions: [CheckResult], _ written: Bool) -> Void

    private let onAdmissions: AdmissionsOutcome
    /// Encoded frames not yet handed to the channel, made at the first write. Reused from one
    /// flush to the next: once the channel has written the previous one, clearing it needs no
    /// new allocation.
    private var pending: ByteBuffer?
    /// The admissions among `pending`.
    private var pendingAdmissions: [CheckResult] = []

    init(onAdmissions: @escaping AdmissionsOutcome) { self.onAdmissions = onAdmissions }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let frame = unwrapOutboundIn(data)
        if pending == nil { pending = context.channel.allocator.buffer(capacity: 4096) }
        frame.encode(into: &pending!)
        if case .checkResult(let result) = frame.body, result.allowed { pendingAdmissions.append(result) }
        if let promise { handOver(context: context, promise: promise) }
    }

    func flush(context: ChannelHandlerContext) {
        handOver(context: context, promise: nil)
        context.flush()
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        // Answers written but not yet flushed go out before the connection (or its output) closes.
        if let bytes = pending, bytes.readableBytes > 0 { flush(context: context) }
        context.close(mode: mode, promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !pendingAdmissions.isEmpty {
            let admissions = pendingAdmissions
            pendingAdmissions = []
            onAdmissions(admissions, false)
        }
        context.fireChannelInactive()
    }

    private func handOver(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        guard let bytes = pending, bytes.readableBytes > 0 else {
            promise?.succeed(())
            return
        }
        if pendingAdmissions.isEmpty {
            context.write(wrapOutboundOut(bytes), promise: promise)
        } else {
            let admissions = pendingAdmissions
            pendingAdmissions = []
            let written = context.eventLoop.makePromise(of: Void.self)
            let report = NIOLoopBound(onAdmissions, eventLoop: context.eventLoop)
            written.futureResult.whenComplete { result in
                guard case .success = result else { return report.value(admissions, false) }
                report.value(admissions, true)
            }
            if let promise { written.futureResult.cascade(to: promise) }
            context.write(wrapOutboundOut(bytes), promise: written)
        }
        pending!.clear()
    }
}
