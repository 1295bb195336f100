public import BursarAPI
import BursarStore
import BursarWire

extension AdminService {
    // MARK: Gateway credentials (operator)

    /// Issues a gateway credential for some organizations (operator only). Each organization's
    /// log records that a gateway now serves it.
    public func createGatewayCredential(_ actor: Actor, _ r: CreateGatewayCredentialRequest) async throws -> GatewayCredentialBody {
        guard actor.principal == .operator else { throw APIError(.forbidden, "only the platform operator issues gateway credentials") }
        do {
            let (credential, secret) = try await store.createGatewayCredential(name: r.name, organizations: r.organizations)
            for org in credential.organizations {
                await record(org, actor, "gateway_credential.create", "gateway_credential:\(credential.id)", "ok")
            }
            return GatewayCredentialBody(credential, secret: secret)
        } catch {
            throw APIError.from(error)
        }
    }

    /// Every gateway credential, without secrets (operator only).
    public func listGatewayCredentials(_ actor: Actor) async throws -> GatewayCredentialList {
        guard actor.principal == .operator else { throw APIError(.forbidden, "only the platform operator sees gateway credentials") }
        do {
            return GatewayCredentialList(credentials: try await store.gatewayCredentials().map { GatewayCredentialBody($0) })
        } catch {
            throw APIError.from(error)
        }
    }

    /// Revokes a gateway credential (operator only): every bursard ends the data-plane
    /// connections that presented it (at once through pub/sub, else within seconds).
    public func revokeGatewayCredential(_ actor: Actor, _ id: String) async throws {
        guard actor.principal == .operator else { throw APIError(.forbidden, "only the platform operator revokes gateway credentials") }
        guard GatewayCredentialBody.isValidID(id) else {
            throw APIError(.invalid, "gateway credential id \"\(AuditText.visible(id))\" is not gw_ and 16 lowercase hex digits")
        }
        do {
            let credential = try await store.revokeGatewayCredential(id: id)
            if let digest = KeyDigest(hex: credential.digest) { await invalidate(.gateway(digest)) }
            for org in credential.organizations {
                await record(org, actor, "gateway_credential.revoke", "gateway_credential:\(credential.id)", "ok")
            }
        } catch {
            throw APIError.from(error)
        }
    }
}

extension GatewayCredentialBody {
    init(_ c: GatewayCredential, secret: String? = nil) {
        self.init(id: c.id, name: c.name, organizations: c.organizations, createdAtMs: c.createdAtMs, secret: secret)
    }
}
