public import NIOCore

/// One frame of protocol v1, with its request id.
public struct Frame: Hashable, Sendable {
    /// The body, by type.
    public enum Body: Hashable, Sendable {
        case check(CheckRequest)
        case settle(SettleRequest)
        case release(ReleaseRequest)
        case ping
        case auth(AuthRequest)
        case checkResult(CheckResult)
        case settleResult(ReservationResult)
        case releaseResult(ReservationResult)
        case pong
        case authResult
        case error(ErrorFrame)

        /// The frame type that carries this body.
        public var type: FrameType {
            switch self {
            case .check: return .check
            case .settle: return .settle
            case .release: return .release
            case .ping: return .ping
            case .auth: return .auth
            case .checkResult: return .checkResult
            case .settleResult: return .settleResult
            case .releaseResult: return .releaseResult
            case .pong: return .pong
            case .authResult: return .authResult
            case .error: return .error
            }
        }
    }

    /// The client's request id (echoed in answers; 0 in an ERROR about an unreadable header).
    public var requestID: UInt64
    /// The body.
    public var body: Body

    /// A frame.
    public init(requestID: UInt64, body: Body) {
        self.requestID = requestID
        self.body = body
    }

    /// Writes the whole frame, header and body, at the buffer's writer index.
    public func encode(into buffer: inout ByteBuffer) {
        let start = buffer.writerIndex
        let type = body.type
        // Room for the whole frame at once (an ERROR's body may still grow it), and the header
        // in one raw pass: this runs for every answer.
        buffer.reserveCapacity(minimumWritableBytes: FrameHeader.size + (type.fixedBodyLength ?? 0))
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: FrameHeader.size) { out in
            out.storeBytes(of: FrameHeader.magic.bigEndian, toByteOffset: 0, as: UInt16.self)
            out.storeBytes(of: FrameHeader.version, toByteOffset: 2, as: UInt8.self)
            out.storeBytes(of: type.rawValue, toByteOffset: 3, as: UInt8.self)
            out.storeBytes(of: UInt32(0), toByteOffset: 4, as: UInt32.self)  // patched below
            out.storeBytes(of: requestID.bigEndian, toByteOffset: 8, as: UInt64.self)
            return FrameHeader.size
        }
        switch body {
        case .check(let b): b.encode(into: &buffer)
        case .settle(let b): b.encode(into: &buffer)
        case .release(let b): b.encode(into: &buffer)
        case .ping, .pong, .authResult: break
        case .auth(let b): b.encode(into: &buffer)
        case .checkResult(let b): b.encode(into: &buffer)
        case .settleResult(let b), .releaseResult(let b): b.encode(into: &buffer)
        case .error(let b): b.encode(into: &buffer)
        }
        let bodyLength = buffer.writerIndex - start - FrameHeader.size
        buffer.setInteger(UInt32(bodyLength), at: start + 4)
    }

    /// The frame as bytes.
    public var bytes: [UInt8] {
        var buffer = ByteBuffer()
        encode(into: &buffer)
        return Array(buffer.readableBytesView)
    }

    /// Which frames a decoder accepts: a server takes requests, a client takes answers.
    public enum Direction: Sendable {
        /// Client to server: CHECK, SETTLE, RELEASE, PING.
        case toServer
        /// Server to client: the results, PONG, ERROR.
        case toClient
    }

    /// Decodes one frame from the front of `buffer`.
    ///
    /// Returns nil, consuming nothing, when more bytes are needed. Throws `ProtocolError` for
    /// input that can never become a valid frame; the header is checked as soon as its 16 bytes
    /// are in, so an oversized or mislabelled frame is refused before its body is buffered.
    public static func decode(from buffer: inout ByteBuffer, direction: Direction) throws(ProtocolError) -> Frame? {
        guard let header = try peekHeader(buffer, direction: direction) else { return nil }
        let total = FrameHeader.size + Int(header.bodyLength)
        guard buffer.readableBytes >= total else { return nil }
        buffer.moveReaderIndex(forwardBy: FrameHeader.size)
        var body = buffer.readSlice(length: Int(header.bodyLength))!
        let id = header.requestID
        let decoded: Body
        switch header.type {
        case .check: decoded = .check(try CheckRequest.decode(body: &body, requestID: id))
        case .settle: decoded = .settle(try SettleRequest.decode(body: &body, requestID: id))
        case .release: decoded = .release(try ReleaseRequest.decode(body: &body, requestID: id))
        case .ping: decoded = .ping
        case .auth: decoded = .auth(AuthRequest.decode(body: &body))
        case .checkResult: decoded = .checkResult(try CheckResult.decode(body: &body, requestID: id))
        case .settleResult: decoded = .settleResult(try ReservationResult.decode(body: &body, requestID: id))
        case .releaseResult: decoded = .releaseResult(try ReservationResult.decode(body: &body, requestID: id))
        case .pong: decoded = .pong
        case .authResult: decoded = .authResult
        case .error: decoded = .error(try ErrorFrame.decode(body: &body, requestID: id))
        }
        return Frame(requestID: id, body: decoded)
    }

    /// Validates the header at the front of `buffer` without consuming it; nil if under 16 bytes.
    public static func peekHeader(_ buffer: ByteBuffer, direction: Direction) throws(ProtocolError) -> FrameHeader? {
        let r = buffer.readerIndex
        // Check what is already there byte by byte, so garbage is refused at its first byte.
        if buffer.readableBytes >= 1, buffer.getInteger(at: r, as: UInt8.self)! != 0x42 {
            throw ProtocolError(.badMagic, "frame does not start with magic \"BR\" (0x4252)")
        }
        if buffer.readableBytes >= 2, buffer.getInteger(at: r + 1, as: UInt8.self)! != 0x52 {
            throw ProtocolError(.badMagic, "frame does not start with magic \"BR\" (0x4252)")
        }
        guard buffer.readableBytes >= FrameHeader.size else { return nil }
        let version = buffer.getInteger(at: r + 2, as: UInt8.self)!
        let typeByte = buffer.getInteger(at: r + 3, as: UInt8.self)!
        let length = buffer.getInteger(at: r + 4, as: UInt32.self)!
        let id = buffer.getInteger(at: r + 8, as: UInt64.self)!
        guard version == FrameHeader.version else {
            throw ProtocolError(.unsupportedVersion, "version \(version) is not supported; this peer speaks version \(FrameHeader.version)", requestID: id)
        }
        guard let type = FrameType(rawValue: typeByte) else {
            throw ProtocolError(.unknownFrameType, "unknown frame type 0x\(String(typeByte, radix: 16))", requestID: id)
        }
        guard type.isRequest == (direction == .toServer) || (type == .error && direction == .toClient) else {
            throw ProtocolError(.unexpectedFrameType, "frame type \(type) is not accepted in this direction", requestID: id)
        }
        guard length <= FrameHeader.maxBodyLength else {
            throw ProtocolError(.frameTooLarge, "body length \(length) exceeds the maximum \(FrameHeader.maxBodyLength)", requestID: id)
        }
        if let fixed = type.fixedBodyLength {
            guard Int(length) == fixed else {
                throw ProtocolError(.badLength, "\(type) body must be \(fixed) bytes, header says \(length)", requestID: id)
            }
        } else if length < 4 || length > UInt32(4 + ErrorFrame.maxMessageBytes) {
            throw ProtocolError(.badLength, "error body must be 4…\(4 + ErrorFrame.maxMessageBytes) bytes, header says \(length)", requestID: id)
        }
        return FrameHeader(type: type, bodyLength: length, requestID: id)
    }
}

/// A NIO decoder for a stream of frames, one direction. Throws `ProtocolError` on bad input and
/// `ProtocolError(.truncated)` when the stream ends inside a frame.
public struct FrameDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = Frame

    /// Which frames this side accepts.
    public let direction: Frame.Direction

    /// A decoder for one side of a connection.
    public init(direction: Frame.Direction) { self.direction = direction }

    public mutating func decode(buffer: inout ByteBuffer) throws -> Frame? {
        try Frame.decode(from: &buffer, direction: direction)
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> Frame? {
        if let frame = try decode(buffer: &buffer) { return frame }
        if buffer.readableBytes > 0 {
            let id = buffer.readableBytes >= FrameHeader.size ? buffer.getInteger(at: buffer.readerIndex + 8, as: UInt64.self)! : 0
            let count = buffer.readableBytes
            buffer.moveReaderIndex(forwardBy: count)
            throw ProtocolError(.truncated, "stream ended \(count) bytes into a frame", requestID: id)
        }
        return nil
    }
}
