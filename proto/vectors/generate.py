#!/usr/bin/env python3
"""Generates vectors.json: byte-exact test vectors for the bursar wire protocol, version 1.

This is a second, independent implementation of proto/SPEC.md, written with nothing but the
Python standard library. It never runs the Swift codec. Every vector is built by the encoder
below and then checked by the decoder below: a valid frame must decode back to the fields it was
built from, an error stream must be refused with the declared code, request id and byte
position, and an incomplete stream must ask for more bytes.

A reservation id is 16 opaque bytes (SPEC 5: bursard encrypts it; clients copy it back
unchanged). The vectors write it as {"org_id": .., "sequence": ..}: nothing but its first and its
last 8 bytes, each read as a big-endian u64, kept under the names they had when the id was sent
in clear. The one rule a receiver applies to it: all zero is refused in SETTLE and RELEASE.

Run it from anywhere:  python3 proto/vectors/generate.py
The output is deterministic: running it twice gives the same file.
"""

import hashlib
import json
import os
import struct

VERSION = 1
MAGIC = b"BR"
HEADER_SIZE = 16
MAX_BODY = 4096
MODEL_FIELD = 64
MAX_MESSAGE = 256
MAX_EXACT = (1 << 53) - 1
INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)
U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1

# Frame types: code -> (name, direction that receives it, fixed body size or None).
TYPES = {
    0x01: ("check", "to_server", 112),
    0x02: ("settle", "to_server", 32),
    0x03: ("release", "to_server", 16),
    0x04: ("ping", "to_server", 0),
    0x05: ("auth", "to_server", 32),
    0x81: ("check_result", "to_client", 112),
    0x82: ("settle_result", "to_client", 24),
    0x83: ("release_result", "to_client", 24),
    0x84: ("pong", "to_client", 0),
    0x85: ("auth_result", "to_client", 0),
    0xFF: ("error", "to_client", None),
}
TYPE_CODE = {name: code for code, (name, _, _) in TYPES.items()}

DENY_REASONS = {
    0: "none",
    1: "unknown_key",
    2: "key_revoked",
    3: "key_expired",
    4: "creator_lost_access",
    5: "project_inactive",
    6: "org_suspended",
    7: "model_not_allowed",
    8: "key_rpm",
    9: "key_tpm",
    10: "project_rpm",
    11: "project_tpm",
    12: "key_budget",
    13: "project_budget",
    14: "org_credits",
    15: "request_too_large",
    16: "store_unavailable",
    17: "overloaded",
    18: "key_lookups_throttled",
    19: "price_unknown",
}
REASON_CODE = {name: code for code, name in DENY_REASONS.items()}

STATUSES = {
    0: "applied",
    1: "already_settled",
    2: "already_released",
    3: "expired",
    4: "unknown",
    5: "store_unavailable",
    6: "overloaded",
}
STATUS_CODE = {name: code for code, name in STATUSES.items()}

ERROR_CODES = {
    1: "bad_magic",
    2: "unsupported_version",
    3: "unknown_frame_type",
    4: "unexpected_frame_type",
    5: "bad_length",
    6: "frame_too_large",
    7: "malformed_field",
    8: "truncated",
    9: "internal_error",
    10: "too_many_connections",
    11: "idle_timeout",
    12: "frame_timeout",
    13: "unauthorized",
}
ERROR_CODE = {name: code for code, name in ERROR_CODES.items()}

DECISIONS = {0: "deny", 1: "allow"}

# ---------------------------------------------------------------------------------------------
# Encoding. Bodies are built from a field dictionary in the same shape as the JSON "frame".
# The encoder deliberately does not validate: error vectors are made by encoding bad values.


def header(type_code, body_length, request_id, version=VERSION, magic=MAGIC):
    return magic + struct.pack(">BBIQ", version, type_code, body_length, request_id)


def model_field(model):
    raw = model.encode("utf-8") if isinstance(model, str) else model
    assert len(raw) <= MODEL_FIELD, "a model name longer than 64 bytes cannot be sent"
    return raw + b"\x00" * (MODEL_FIELD - len(raw))


def reservation_bytes(r):
    """The 16 bytes of a reservation id: "org_id" is its first 8 bytes, "sequence" its last 8."""
    return struct.pack(">QQ", r["org_id"], r["sequence"])


def encode_body(f):
    t = f["type_name"]
    if t == "check":
        return (
            bytes.fromhex(f["key_digest"])
            + model_field(f["model"])
            + struct.pack(">IIq", f["input_tokens"], f["max_output_tokens"], f["estimated_cost"])
        )
    if t == "settle":
        return reservation_bytes(f["reservation"]) + struct.pack(
            ">IIq", f["input_tokens"], f["output_tokens"], f["cost"]
        )
    if t == "release":
        return reservation_bytes(f["reservation"])
    if t == "auth":
        return bytes.fromhex(f["credential_digest"])
    if t in ("ping", "pong", "auth_result"):
        return b""
    if t == "check_result":
        return (
            struct.pack(">BBHI", f["decision"], f["reason"], f["key_flags"], f["retry_after_ms"])
            + reservation_bytes(f["reservation"])
            + struct.pack(">QQQ", f["org_id"], f["project_id"], f["key_id"])
            + struct.pack(
                ">IIIIII",
                f["requests_limit"],
                f["requests_remaining"],
                f["requests_reset_ms"],
                f["tokens_limit"],
                f["tokens_remaining"],
                f["tokens_reset_ms"],
            )
            + struct.pack(
                ">qqqqq",
                f["key_budget_remaining"],
                f["key_budget_resets_at_ms"],
                f["project_budget_remaining"],
                f["project_budget_resets_at_ms"],
                f["org_credits_remaining"],
            )
        )
    if t in ("settle_result", "release_result"):
        return struct.pack(">B7xqq", f["status"], f["cost_delta"], f["token_delta"])
    if t == "error":
        message = f["message"].encode("utf-8")
        return struct.pack(">HH", f["code"], len(message)) + message
    raise ValueError(t)


def encode(f):
    body = encode_body(f)
    return header(f["type"], len(body), f["request_id"]) + body


# ---------------------------------------------------------------------------------------------
# Decoding, written from the spec's rules. Returns one of
#   ("frame", fields, consumed) | ("error", code_name, request_id) | ("incomplete",)


class Refused(Exception):
    def __init__(self, code, request_id=0):
        super().__init__(code)
        self.code = code
        self.request_id = request_id


def decode(stream, direction):
    try:
        return decode_or_raise(stream, direction)
    except Refused as e:
        return ("error", e.code, e.request_id)


def decode_or_raise(s, direction):
    # The magic is checked byte by byte, so garbage is refused at its first byte.
    if len(s) >= 1 and s[0] != MAGIC[0]:
        raise Refused("bad_magic")
    if len(s) >= 2 and s[1] != MAGIC[1]:
        raise Refused("bad_magic")
    if len(s) < HEADER_SIZE:
        return ("incomplete",)
    version, type_code, length, rid = struct.unpack(">BBIQ", s[2:HEADER_SIZE])
    if version != VERSION:
        raise Refused("unsupported_version", rid)
    if type_code not in TYPES:
        raise Refused("unknown_frame_type", rid)
    name, accepted_by, fixed = TYPES[type_code]
    if accepted_by != direction:
        raise Refused("unexpected_frame_type", rid)
    if length > MAX_BODY:
        raise Refused("frame_too_large", rid)
    if fixed is not None and length != fixed:
        raise Refused("bad_length", rid)
    if fixed is None and not (4 <= length <= 4 + MAX_MESSAGE):
        raise Refused("bad_length", rid)
    if len(s) < HEADER_SIZE + length:
        return ("incomplete",)
    body = s[HEADER_SIZE : HEADER_SIZE + length]
    fields = {"type": type_code, "type_name": name, "request_id": rid}
    fields.update(decode_body(name, body, rid))
    return ("frame", fields, HEADER_SIZE + length)


PRICE_FROM_TABLE = -1  # CHECK and SETTLE: bursar prices the request from its price table (§6.1, §13.12)


def check_money(value, rid):
    if not (0 <= value <= MAX_EXACT or value == PRICE_FROM_TABLE):
        raise Refused("malformed_field", rid)


def decode_reservation(b, rid, refuse_all_zero):
    """An opaque reservation id, as its first and last 8 bytes (SPEC 5). In SETTLE and RELEASE the
    all-zero id (a denied CHECK's) is refused; any other 16 bytes are valid on the wire."""
    if refuse_all_zero and not any(b):
        raise Refused("malformed_field", rid)
    org_id, sequence = struct.unpack(">QQ", b)
    return {"org_id": org_id, "sequence": sequence}


def decode_model(field, rid):
    end = field.find(b"\x00")
    if end == -1:
        end = len(field)
    if end == 0:
        raise Refused("malformed_field", rid)  # empty
    if any(field[end:]):
        raise Refused("malformed_field", rid)  # NUL inside the name, or bytes after the padding
    try:
        return field[:end].decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise Refused("malformed_field", rid) from None


def decode_body(name, b, rid):
    if name == "check":
        model = decode_model(b[32:96], rid)
        input_tokens, max_output, cost = struct.unpack(">IIq", b[96:112])
        check_money(cost, rid)
        return {
            "key_digest": b[0:32].hex(),
            "model": model,
            "input_tokens": input_tokens,
            "max_output_tokens": max_output,
            "estimated_cost": cost,
        }
    if name == "settle":
        reservation = decode_reservation(b[0:16], rid, True)
        input_tokens, output_tokens, cost = struct.unpack(">IIq", b[16:32])
        check_money(cost, rid)
        return {
            "reservation": reservation,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cost": cost,
        }
    if name == "release":
        return {"reservation": decode_reservation(b, rid, True)}
    if name == "auth":
        return {"credential_digest": b.hex()}  # any 32 bytes (SPEC 6.5)
    if name in ("ping", "pong", "auth_result"):
        return {}
    if name == "check_result":
        decision, reason, flags, retry = struct.unpack(">BBHI", b[0:8])
        if decision not in DECISIONS or reason not in DENY_REASONS:
            raise Refused("malformed_field", rid)
        if (decision == 1) != (reason == 0):
            raise Refused("malformed_field", rid)
        org, project, key = struct.unpack(">QQQ", b[24:48])
        rl, rr, rreset, tl, tr, treset = struct.unpack(">IIIIII", b[48:72])
        kb, kbat, pb, pbat, oc = struct.unpack(">qqqqq", b[72:112])
        return {
            "decision": decision,
            "decision_name": DECISIONS[decision],
            "reason": reason,
            "reason_name": DENY_REASONS[reason],
            "key_flags": flags,
            "retry_after_ms": retry,
            "reservation": decode_reservation(b[8:24], rid, False),
            "org_id": org,
            "project_id": project,
            "key_id": key,
            "requests_limit": rl,
            "requests_remaining": rr,
            "requests_reset_ms": rreset,
            "tokens_limit": tl,
            "tokens_remaining": tr,
            "tokens_reset_ms": treset,
            "key_budget_remaining": kb,
            "key_budget_resets_at_ms": kbat,
            "project_budget_remaining": pb,
            "project_budget_resets_at_ms": pbat,
            "org_credits_remaining": oc,
        }
    if name in ("settle_result", "release_result"):
        status, cost_delta, token_delta = struct.unpack(">B7xqq", b)
        if status not in STATUSES:
            raise Refused("malformed_field", rid)
        return {
            "status": status,
            "status_name": STATUSES[status],
            "cost_delta": cost_delta,
            "token_delta": token_delta,
        }
    if name == "error":
        code, length = struct.unpack(">HH", b[0:4])
        if code not in ERROR_CODES:
            raise Refused("malformed_field", rid)
        if length > MAX_MESSAGE or length != len(b) - 4:
            raise Refused("bad_length", rid)
        try:
            message = b[4:].decode("utf-8", errors="strict")
        except UnicodeDecodeError:
            raise Refused("malformed_field", rid) from None
        return {"code": code, "code_name": ERROR_CODES[code], "message": message}
    raise ValueError(name)


def detected_after(stream, direction):
    """The shortest prefix of `stream` that the decoder refuses."""
    for n in range(1, len(stream) + 1):
        if decode(stream[:n], direction)[0] == "error":
            return n
    raise AssertionError("stream is never refused")


# ---------------------------------------------------------------------------------------------
# Frame builders: full field dictionaries, named exactly as in vectors.json.


def digest(secret):
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def res(org_id, sequence):
    """A reservation id by its first 8 bytes ("org_id") and last 8 bytes ("sequence"), each a
    big-endian u64. The names are historical: the id is opaque (SPEC 5)."""
    return {"org_id": org_id, "sequence": sequence}


def opaque_res(label):
    """A reservation id that looks like one bursard issues: 16 bytes of AES output, which look
    random. Here the first 16 bytes of SHA-256(label), so the file stays deterministic."""
    org_id, sequence = struct.unpack(">QQ", hashlib.sha256(label.encode("utf-8")).digest()[:16])
    return res(org_id, sequence)


def check(request_id, key_digest, model, input_tokens, max_output_tokens, estimated_cost):
    return {
        "type": TYPE_CODE["check"],
        "type_name": "check",
        "request_id": request_id,
        "key_digest": key_digest,
        "model": model,
        "input_tokens": input_tokens,
        "max_output_tokens": max_output_tokens,
        "estimated_cost": estimated_cost,
    }


def settle(request_id, reservation, input_tokens, output_tokens, cost):
    return {
        "type": TYPE_CODE["settle"],
        "type_name": "settle",
        "request_id": request_id,
        "reservation": reservation,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost": cost,
    }


def release(request_id, reservation):
    return {"type": TYPE_CODE["release"], "type_name": "release", "request_id": request_id, "reservation": reservation}


def empty(name, request_id):
    return {"type": TYPE_CODE[name], "type_name": name, "request_id": request_id}


def auth(request_id, credential_digest):
    return {"type": TYPE_CODE["auth"], "type_name": "auth", "request_id": request_id,
            "credential_digest": credential_digest}


def check_result(request_id, decision, reason, **kw):
    """A CHECK_RESULT; fields not given are zero, the i64 remaining fields INT64_MAX."""
    f = {
        "type": TYPE_CODE["check_result"],
        "type_name": "check_result",
        "request_id": request_id,
        "decision": decision,
        "decision_name": DECISIONS.get(decision, "invalid"),
        "reason": reason,
        "reason_name": DENY_REASONS.get(reason, "invalid"),
        "key_flags": 0,
        "retry_after_ms": 0,
        "reservation": res(0, 0),
        "org_id": 0,
        "project_id": 0,
        "key_id": 0,
        "requests_limit": 0,
        "requests_remaining": 0,
        "requests_reset_ms": 0,
        "tokens_limit": 0,
        "tokens_remaining": 0,
        "tokens_reset_ms": 0,
        "key_budget_remaining": INT64_MAX,
        "key_budget_resets_at_ms": 0,
        "project_budget_remaining": INT64_MAX,
        "project_budget_resets_at_ms": 0,
        "org_credits_remaining": INT64_MAX,
    }
    for k, v in kw.items():
        assert k in f, k
        f[k] = v
    return f


def reservation_result(name, request_id, status, cost_delta=0, token_delta=0):
    return {
        "type": TYPE_CODE[name],
        "type_name": name,
        "request_id": request_id,
        "status": status,
        "status_name": STATUSES.get(status, "invalid"),
        "cost_delta": cost_delta,
        "token_delta": token_delta,
    }


def error_frame(request_id, code, message):
    return {
        "type": TYPE_CODE["error"],
        "type_name": "error",
        "request_id": request_id,
        "code": code,
        "code_name": ERROR_CODES.get(code, "invalid"),
        "message": message,
    }


# ---------------------------------------------------------------------------------------------
# The vectors.

KEY_A = digest("sk-br-example-0001")
KEY_B = digest("sk-br-example-0002")
KEY_REVOKED = digest("sk-br-example-revoked")
# AUTH's digest of a gateway credential's secret, its text as UTF-8 (SPEC 6.5; real secrets are
# "bgw_" and 43 characters of base64url).
CREDENTIAL = digest("bgw_example-0001")
MODEL_64 = "accounts/fireworks/models/llama-v3p1-405b-instruct-long-ctx-2025"
MODEL_64_MULTIBYTE = "a" + "日" * 21  # 1 + 21 * 3 = 64 bytes; the field has no padding at all
MODEL_UTF8 = "modèle-日本語-🚀"  # 2-, 3- and 4-byte sequences
assert len(MODEL_64.encode()) == 64 and len(MODEL_64_MULTIBYTE.encode()) == 64

# Realistic instants: 2026-01-01T00:00:00Z (a key's monthly window end) and 2026-02-01.
JAN_END_MS = 1767225600000
FEB_END_MS = 1769904000000
DAY_END_MS = 1765929600000  # 2025-12-17T00:00:00Z, a daily window's end

vectors = []


def valid(name, direction, fields):
    vectors.append({"name": name, "direction": direction, "stream": encode(fields), "frame": fields})


def refused(name, direction, stream, code, request_id):
    vectors.append({"name": name, "direction": direction, "stream": stream, "error": (code, request_id)})


def incomplete(name, direction, stream):
    vectors.append({"name": name, "direction": direction, "stream": stream, "incomplete": True})


# -- to the server: valid requests --
valid("check", "to_server", check(1, KEY_A, "gpt-4o-mini", 1200, 800, 1_230_000))
valid("check_model_64_bytes", "to_server", check(2, KEY_A, MODEL_64, 52_000, 4096, 310_000_000))
valid("check_model_64_bytes_multibyte", "to_server", check(3, KEY_B, MODEL_64_MULTIBYTE, 10, 10, 42))
valid("check_model_multibyte_utf8", "to_server", check(4, KEY_B, MODEL_UTF8, 640, 256, 2_750_000))
valid("check_model_one_byte", "to_server", check(5, KEY_B, "x", 1, 1, 1))
valid("check_cost_zero", "to_server", check(6, KEY_A, "llama-3.1-8b-instruct", 0, 0, 0))
valid("check_cost_max_exact_tokens_max_u32", "to_server", check(7, KEY_A, "claude-opus-4", U32_MAX, U32_MAX, MAX_EXACT))
valid("check_request_id_max_u64", "to_server", check(U64_MAX, KEY_REVOKED, "gpt-4o", 300, 150, 525_000))
valid("check_priced_from_table", "to_server", check(21, KEY_A, "gpt-4o", 1200, 800, PRICE_FROM_TABLE))
valid("settle_priced_from_table", "to_server", settle(22, res(42, 1004), 1180, 312, PRICE_FROM_TABLE))
valid("check_request_id_zero", "to_server", check(0, KEY_A, "gpt-4o", 300, 150, 525_000))
valid("settle", "to_server", settle(8, res(42, 1001), 1180, 312, 912_340))
valid("settle_over_estimate", "to_server", settle(9, res(42, 1002), 1200, 4000, 3_400_000))
valid("settle_cost_zero", "to_server", settle(10, res(7, 1), 0, 0, 0))
valid("settle_extremes", "to_server", settle(11, res(U64_MAX, U64_MAX), U32_MAX, U32_MAX, MAX_EXACT))
valid("release", "to_server", release(12, res(42, 1003)))
valid("settle_opaque_reservation", "to_server", settle(16, opaque_res("settle_opaque_reservation"), 10, 20, 3_000))
valid("release_sequence_one", "to_server", release(13, res(1, 1)))
# Only all zero is refused: an id whose last 8 bytes are zero is valid (refused before 2026-12-04).
valid("settle_reservation_last_8_bytes_zero", "to_server", settle(17, res(42, 0), 10, 20, 3_000))
valid("release_reservation_last_8_bytes_zero", "to_server", release(18, res(42, 0)))
valid("release_reservation_only_first_byte_nonzero", "to_server", release(19, res(1 << 56, 0)))
valid("release_opaque_reservation", "to_server", release(20, opaque_res("release_opaque_reservation")))
valid("ping", "to_server", empty("ping", 14))
valid("ping_request_id_max_u64", "to_server", empty("ping", U64_MAX))
valid("auth", "to_server", auth(1, CREDENTIAL))
valid("auth_any_digest", "to_server", auth(24, "ff" * 32))
valid("auth_digest_all_zero", "to_server", auth(25, "00" * 32))

# -- to the client: valid answers --
valid(
    "check_result_allow",
    "to_client",
    check_result(
        1, 1, 0,
        reservation=res(42, 1001), org_id=42, project_id=7, key_id=99,
        requests_limit=60, requests_remaining=59, requests_reset_ms=1000,
        tokens_limit=20_000, tokens_remaining=18_000, tokens_reset_ms=6000,
        key_budget_remaining=198_500_000_000, key_budget_resets_at_ms=JAN_END_MS,
        project_budget_remaining=758_000_000_000, project_budget_resets_at_ms=JAN_END_MS,
        org_credits_remaining=5_000_000_000_000,
    ),
)
valid(
    "check_result_allow_unlimited_content_logging_disabled",
    "to_client",
    check_result(
        2, 1, 0,
        key_flags=1, reservation=res(42, 1002), org_id=42, project_id=8, key_id=100,
    ),
)
valid(
    "check_result_allow_lifetime_budget_project_tighter",
    "to_client",
    check_result(
        3, 1, 0,
        reservation=res(9000, 77), org_id=9000, project_id=12, key_id=5,
        requests_limit=600, requests_remaining=12, requests_reset_ms=58_800,
        tokens_limit=120_000, tokens_remaining=3_500, tokens_reset_ms=58_250,
        key_budget_remaining=1, key_budget_resets_at_ms=0,
        project_budget_remaining=0, project_budget_resets_at_ms=FEB_END_MS,
        org_credits_remaining=INT64_MAX,
    ),
)
valid(
    "check_result_allow_admitted_locally",
    "to_client",
    check_result(
        15, 1, 0,
        key_flags=2, reservation=opaque_res("check_result_allow_admitted_locally"), org_id=42, project_id=7, key_id=99,
    ),
)
valid("check_result_deny_unknown_key", "to_client", check_result(4, 0, REASON_CODE["unknown_key"]))
valid("check_result_deny_key_revoked", "to_client",
      check_result(5, 0, REASON_CODE["key_revoked"], org_id=42, project_id=7, key_id=97))
valid("check_result_deny_key_expired", "to_client",
      check_result(6, 0, REASON_CODE["key_expired"], org_id=42, project_id=7, key_id=98))
valid("check_result_deny_creator_lost_access", "to_client",
      check_result(7, 0, REASON_CODE["creator_lost_access"], org_id=42, project_id=7, key_id=99))
valid("check_result_deny_project_inactive", "to_client",
      check_result(8, 0, REASON_CODE["project_inactive"], org_id=42, project_id=3, key_id=31))
valid("check_result_deny_org_suspended", "to_client",
      check_result(9, 0, REASON_CODE["org_suspended"], org_id=43, project_id=1, key_id=1))
valid("check_result_deny_model_not_allowed", "to_client",
      check_result(10, 0, REASON_CODE["model_not_allowed"], key_flags=1, org_id=42, project_id=7, key_id=99))
valid(
    "check_result_deny_key_rpm",
    "to_client",
    check_result(
        11, 0, REASON_CODE["key_rpm"], retry_after_ms=750, org_id=42, project_id=7, key_id=99,
        requests_limit=60, requests_remaining=0, requests_reset_ms=60_000,
        tokens_limit=20_000, tokens_remaining=14_000, tokens_reset_ms=18_000,
        key_budget_remaining=150_000_000_000, key_budget_resets_at_ms=JAN_END_MS,
        project_budget_remaining=758_000_000_000, project_budget_resets_at_ms=JAN_END_MS,
    ),
)
valid(
    "check_result_deny_key_tpm",
    "to_client",
    check_result(
        12, 0, REASON_CODE["key_tpm"], retry_after_ms=4_200, org_id=42, project_id=7, key_id=99,
        requests_limit=60, requests_remaining=41, requests_reset_ms=19_000,
        tokens_limit=20_000, tokens_remaining=600, tokens_reset_ms=58_200,
    ),
)
valid(
    "check_result_deny_project_rpm",
    "to_client",
    check_result(
        13, 0, REASON_CODE["project_rpm"], retry_after_ms=100, org_id=42, project_id=7, key_id=99,
        requests_limit=600, requests_remaining=0, requests_reset_ms=60_000,
        tokens_limit=120_000, tokens_remaining=90_000, tokens_reset_ms=15_000,
    ),
)
valid(
    "check_result_deny_project_tpm",
    "to_client",
    check_result(
        14, 0, REASON_CODE["project_tpm"], retry_after_ms=12_500, org_id=42, project_id=7, key_id=99,
        requests_limit=600, requests_remaining=580, requests_reset_ms=2_000,
        tokens_limit=120_000, tokens_remaining=1_000, tokens_reset_ms=59_500,
    ),
)
valid(
    "check_result_deny_key_budget_negative_remaining",
    "to_client",
    check_result(
        15, 0, REASON_CODE["key_budget"], org_id=42, project_id=7, key_id=99,
        key_budget_remaining=-1_250_000, key_budget_resets_at_ms=DAY_END_MS,
        project_budget_remaining=758_000_000_000, project_budget_resets_at_ms=JAN_END_MS,
        org_credits_remaining=5_000_000_000_000,
    ),
)
valid(
    "check_result_deny_project_budget",
    "to_client",
    check_result(
        16, 0, REASON_CODE["project_budget"], org_id=42, project_id=7, key_id=99,
        project_budget_remaining=-3_000_000_000, project_budget_resets_at_ms=JAN_END_MS,
    ),
)
valid(
    "check_result_deny_org_credits",
    "to_client",
    check_result(
        17, 0, REASON_CODE["org_credits"], org_id=42, project_id=7, key_id=99,
        org_credits_remaining=-17, key_budget_remaining=INT64_MIN + 1,
    ),
)
valid(
    "check_result_deny_request_too_large",
    "to_client",
    check_result(
        18, 0, REASON_CODE["request_too_large"], org_id=42, project_id=7, key_id=99,
        tokens_limit=20_000, tokens_remaining=20_000, tokens_reset_ms=0,
    ),
)
valid("check_result_deny_store_unavailable", "to_client",
      check_result(U64_MAX, 0, REASON_CODE["store_unavailable"]))
valid("check_result_deny_overloaded", "to_client",
      check_result(19, 0, REASON_CODE["overloaded"], retry_after_ms=50))
valid("check_result_deny_key_lookups_throttled", "to_client",
      check_result(20, 0, REASON_CODE["key_lookups_throttled"], retry_after_ms=41_250))
valid("check_result_deny_price_unknown", "to_client",
      check_result(23, 0, REASON_CODE["price_unknown"], org_id=42, project_id=7, key_id=99,
                   key_budget_remaining=198_500_000_000, key_budget_resets_at_ms=JAN_END_MS))
for code, status in STATUSES.items():
    moved = status == "applied"
    valid(f"settle_result_{status}", "to_client",
          reservation_result("settle_result", 100 + code, code, -317_660 if moved else 0, -1288 if moved else 0))
valid("settle_result_applied_over_estimate", "to_client",
      reservation_result("settle_result", 106, 0, 2_170_000, 2_712))
for code, status in STATUSES.items():
    moved = status == "applied"
    valid(f"release_result_{status}", "to_client",
          reservation_result("release_result", 200 + code, code, -1_230_000 if moved else 0, -2000 if moved else 0))
valid("pong", "to_client", empty("pong", 14))
valid("auth_result", "to_client", empty("auth_result", 1))
valid("auth_result_request_id_max_u64", "to_client", empty("auth_result", U64_MAX))
valid("error_bad_magic", "to_client", error_frame(0, 1, 'frame does not start with magic "BR" (0x4252)'))
valid("error_unsupported_version", "to_client",
      error_frame(21, 2, "version 2 is not supported; this peer speaks version 1"))
valid("error_unknown_frame_type", "to_client", error_frame(22, 3, "unknown frame type 0x6"))
valid("error_unexpected_frame_type", "to_client",
      error_frame(23, 4, "frame type checkResult is not accepted in this direction"))
valid("error_bad_length", "to_client", error_frame(24, 5, "check body must be 112 bytes, header says 111"))
valid("error_frame_too_large", "to_client", error_frame(25, 6, "body length 4097 exceeds the maximum 4096"))
valid("error_malformed_field", "to_client", error_frame(26, 7, "model name is empty"))
valid("error_truncated", "to_client", error_frame(27, 8, "stream ended 40 bytes into a frame"))
valid("error_internal_error_empty_message", "to_client", error_frame(28, 9, ""))
valid("error_too_many_connections", "to_client",
      error_frame(0, 10, "the server has its maximum of 4096 connections open; retry later"))
valid("error_idle_timeout", "to_client", error_frame(0, 11, "no frame for 300000 ms"))
valid("error_frame_timeout", "to_client", error_frame(0, 12, "frame not completed within 10000 ms of its first byte"))
valid("error_unauthorized", "to_client", error_frame(1, 13, "unknown or revoked gateway credential"))
valid("error_unauthorized_credential_revoked", "to_client",
      error_frame(0, 13, "the gateway credential of this connection was revoked"))
valid("error_message_256_bytes", "to_client", error_frame(29, 7, "é" * 128))
valid("error_message_multibyte", "to_client", error_frame(30, 7, "model name « 模型 » is not allowed here 🚫"))


# -- refused streams --
def raw_header_then(type_code, length, request_id, body=b"", version=VERSION):
    return header(type_code, length, request_id, version) + body


def check_body_with_model_field(field, cost=1_000_000):
    assert len(field) == MODEL_FIELD
    return bytes.fromhex(KEY_A) + field + struct.pack(">IIq", 100, 100, cost)


def check_raw(request_id, body):
    return header(TYPE_CODE["check"], len(body), request_id) + body


CHECK_BODY = encode_body(check(0, KEY_A, "gpt-4o-mini", 1200, 800, 1_230_000))

refused("bad_magic_first_byte", "to_server", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "bad_magic", 0)
refused("bad_magic_second_byte", "to_server", b"\x42\x00" + encode(check(1, KEY_A, "gpt-4o", 1, 1, 1))[2:], "bad_magic", 0)
refused("bad_magic_byte_order_swapped", "to_server", b"RB" + encode(empty("ping", 1))[2:], "bad_magic", 0)
refused("bad_magic_to_client", "to_client", b"\x00" * 40, "bad_magic", 0)
refused("unsupported_version_2", "to_server", raw_header_then(0x01, 112, 31, CHECK_BODY, version=2),
        "unsupported_version", 31)
refused("unsupported_version_0", "to_server", raw_header_then(0x04, 0, 32, version=0), "unsupported_version", 32)
refused("unsupported_version_to_client", "to_client", raw_header_then(0x84, 0, 33, version=255),
        "unsupported_version", 33)
refused("unknown_frame_type_0x06", "to_server", raw_header_then(0x06, 0, 34), "unknown_frame_type", 34)
refused("unknown_frame_type_0x00", "to_server", raw_header_then(0x00, 0, 35), "unknown_frame_type", 35)
refused("unknown_frame_type_0x86", "to_client", raw_header_then(0x86, 0, 36), "unknown_frame_type", 36)
refused("unexpected_check_result_to_server", "to_server",
        encode(check_result(37, 1, 0, reservation=res(42, 1), org_id=42)), "unexpected_frame_type", 37)
refused("unexpected_pong_to_server", "to_server", encode(empty("pong", 38)), "unexpected_frame_type", 38)
refused("unexpected_error_to_server", "to_server", encode(error_frame(39, 9, "")), "unexpected_frame_type", 39)
refused("unexpected_check_to_client", "to_client",
        encode(check(40, KEY_A, "gpt-4o", 1, 1, 1)), "unexpected_frame_type", 40)
refused("unexpected_ping_to_client", "to_client", encode(empty("ping", 41)), "unexpected_frame_type", 41)
refused("unexpected_settle_to_client", "to_client",
        encode(settle(42, res(1, 1), 1, 1, 1)), "unexpected_frame_type", 42)
refused("unexpected_auth_result_to_server", "to_server", encode(empty("auth_result", 43)), "unexpected_frame_type", 43)
refused("unexpected_auth_to_client", "to_client", encode(auth(44, CREDENTIAL)), "unexpected_frame_type", 44)
# Bad lengths: the header announces a size other than the type's; the announced body follows.
for code, (name, direction, fixed) in TYPES.items():
    if fixed is None:
        continue
    for wrong in ((fixed - 1, fixed + 1) if fixed > 0 else (1, 4)):
        refused(f"bad_length_{name}_{wrong}", direction, raw_header_then(code, wrong, 50 + wrong, b"\x00" * wrong),
                "bad_length", 50 + wrong)
refused("bad_length_error_3", "to_client", raw_header_then(0xFF, 3, 60, b"\x00\x09\x00"), "bad_length", 60)
refused("bad_length_error_0", "to_client", raw_header_then(0xFF, 0, 61), "bad_length", 61)
refused("bad_length_error_261", "to_client",
        raw_header_then(0xFF, 261, 62, struct.pack(">HH", 7, 257) + b"m" * 257), "bad_length", 62)
refused("frame_too_large_4097", "to_server", raw_header_then(0x01, 4097, 70), "frame_too_large", 70)
refused("frame_too_large_u32_max", "to_server", raw_header_then(0x01, U32_MAX, 71), "frame_too_large", 71)
refused("frame_too_large_error_4097", "to_client", raw_header_then(0xFF, 4097, 72), "frame_too_large", 72)
refused("frame_too_large_check_result_u32_max", "to_client", raw_header_then(0x81, U32_MAX, 73), "frame_too_large", 73)

# Malformed fields in requests.
refused("malformed_model_empty", "to_server", check_raw(80, check_body_with_model_field(b"\x00" * 64)),
        "malformed_field", 80)
refused("malformed_model_nul_inside", "to_server",
        check_raw(81, check_body_with_model_field(model_field(b"gpt\x00-4o"))), "malformed_field", 81)
refused("malformed_model_bytes_after_padding", "to_server",
        check_raw(82, check_body_with_model_field(b"gpt-4o" + b"\x00" * 57 + b"\x01")), "malformed_field", 82)
refused("malformed_model_leading_nul", "to_server",
        check_raw(83, check_body_with_model_field(b"\x00gpt-4o" + b"\x00" * 57)), "malformed_field", 83)
refused("malformed_model_invalid_utf8", "to_server",
        check_raw(84, check_body_with_model_field(model_field(b"gpt-\xff"))), "malformed_field", 84)
refused("malformed_model_utf8_overlong", "to_server",
        check_raw(85, check_body_with_model_field(model_field(b"gpt\xc0\xaf4o"))), "malformed_field", 85)
refused("malformed_model_utf8_surrogate", "to_server",
        check_raw(86, check_body_with_model_field(model_field(b"gpt\xed\xa0\x80"))), "malformed_field", 86)
refused("malformed_model_utf8_cut_sequence", "to_server",
        check_raw(87, check_body_with_model_field(model_field(b"model-\xe6\x97"))), "malformed_field", 87)
refused("malformed_check_cost_negative", "to_server",
        encode(check(88, KEY_A, "gpt-4o", 10, 10, -2)), "malformed_field", 88)
refused("malformed_check_cost_2_pow_53", "to_server",
        encode(check(89, KEY_A, "gpt-4o", 10, 10, 1 << 53)), "malformed_field", 89)
refused("malformed_check_cost_int64_min", "to_server",
        encode(check(90, KEY_A, "gpt-4o", 10, 10, INT64_MIN)), "malformed_field", 90)
refused("malformed_settle_reservation_all_zero", "to_server",
        encode(settle(91, res(0, 0), 10, 10, 10)), "malformed_field", 91)
refused("malformed_settle_cost_negative", "to_server",
        encode(settle(92, res(42, 5), 10, 10, -2)), "malformed_field", 92)
refused("malformed_settle_cost_2_pow_53", "to_server",
        encode(settle(93, res(42, 5), 10, 10, 1 << 53)), "malformed_field", 93)
refused("malformed_release_reservation_all_zero", "to_server", encode(release(94, res(0, 0))), "malformed_field", 94)
# Malformed fields in answers.
refused("malformed_check_result_decision_2", "to_client", encode(check_result(95, 2, 0)), "malformed_field", 95)
refused("malformed_check_result_unknown_reason", "to_client", encode(check_result(96, 0, 20)), "malformed_field", 96)
refused("malformed_check_result_allow_with_reason", "to_client",
        encode(check_result(97, 1, REASON_CODE["key_rpm"])), "malformed_field", 97)
refused("malformed_check_result_deny_without_reason", "to_client", encode(check_result(98, 0, 0)),
        "malformed_field", 98)
refused("malformed_settle_result_unknown_status", "to_client",
        encode(reservation_result("settle_result", 99, 7)), "malformed_field", 99)
refused("malformed_release_result_unknown_status", "to_client",
        encode(reservation_result("release_result", 100, 255)), "malformed_field", 100)
refused("malformed_error_unknown_code_0", "to_client", encode(error_frame(101, 0, "x")), "malformed_field", 101)
refused("malformed_error_unknown_code_14", "to_client", encode(error_frame(102, 14, "x")), "malformed_field", 102)
refused("malformed_error_message_invalid_utf8", "to_client",
        raw_header_then(0xFF, 6, 103, struct.pack(">HH", 7, 2) + b"\xc3\x28"), "malformed_field", 103)
refused("bad_length_error_message_length_short", "to_client",
        raw_header_then(0xFF, 9, 104, struct.pack(">HH", 7, 4) + b"hello"), "bad_length", 104)
refused("bad_length_error_message_length_long", "to_client",
        raw_header_then(0xFF, 9, 105, struct.pack(">HH", 7, 6) + b"hello"), "bad_length", 105)
refused("bad_length_error_message_length_over_256", "to_client",
        raw_header_then(0xFF, 260, 106, struct.pack(">HH", 7, 300) + b"m" * 256), "bad_length", 106)

# -- incomplete streams: valid prefixes --
FULL_CHECK = encode(check(1, KEY_A, "gpt-4o-mini", 1200, 800, 1_230_000))
incomplete("incomplete_single_magic_byte", "to_server", b"\x42")
incomplete("incomplete_header_15_bytes", "to_server", FULL_CHECK[:15])
incomplete("incomplete_check_header_only", "to_server", FULL_CHECK[:16])
incomplete("incomplete_check_missing_last_byte", "to_server", FULL_CHECK[:-1])
incomplete("incomplete_auth_missing_last_byte", "to_server", encode(auth(1, CREDENTIAL))[:-1])
incomplete("incomplete_check_result_header_only", "to_client",
           encode(check_result(1, 0, REASON_CODE["unknown_key"]))[:16])
incomplete("incomplete_error_body_partial", "to_client", encode(error_frame(9, 9, "internal error"))[:22])


# ---------------------------------------------------------------------------------------------
# Self-check with the decoder above, then write the file.


def finish(v):
    stream = v.pop("stream")
    out = {"name": v["name"], "direction": v["direction"], "hex": stream.hex()}
    result = decode(stream, v["direction"])
    if "frame" in v:
        assert result == ("frame", v["frame"], len(stream)), (v["name"], result)
        out["frame"] = v["frame"]
    elif "error" in v:
        code, rid = v["error"]
        assert result == ("error", code, rid), (v["name"], result)
        out["error"] = {
            "code": ERROR_CODE[code],
            "name": code,
            "request_id": rid,
            "detected_after": detected_after(stream, v["direction"]),
        }
    else:
        assert result == ("incomplete",), (v["name"], result)
        out["incomplete"] = True
    return out


names = [v["name"] for v in vectors]
assert len(names) == len(set(names)), "vector names must be unique"
document = {"version": VERSION, "vectors": [finish(v) for v in vectors]}

covered_reasons = {v["frame"]["reason"] for v in document["vectors"] if v.get("frame", {}).get("type_name") == "check_result"}
assert covered_reasons == set(DENY_REASONS), covered_reasons
covered_statuses = {v["frame"]["status"] for v in document["vectors"] if "status" in v.get("frame", {})}
assert covered_statuses == set(STATUSES), covered_statuses
covered_types = {(v["frame"]["type_name"], v["direction"]) for v in document["vectors"] if "frame" in v}
assert covered_types == {(n, d) for n, d, _ in TYPES.values()}, covered_types
covered_codes = {v["frame"]["code"] for v in document["vectors"] if v.get("frame", {}).get("type_name") == "error"}
assert covered_codes == set(ERROR_CODES), covered_codes
# Every code a decoder raises has a refused stream. The others are not about a frame's bytes:
# the end of a stream (truncated), a server fault, the connection's bounds (SPEC 11.3), and a
# gateway credential refused or missing (unauthorized, SPEC 6.5).
NOT_DECODING = {"truncated", "internal_error", "too_many_connections", "idle_timeout", "frame_timeout", "unauthorized"}
refused_codes = {v["error"]["name"] for v in document["vectors"] if "error" in v}
assert refused_codes == set(ERROR_CODES.values()) - NOT_DECODING, refused_codes

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors.json")
with open(path, "w", encoding="utf-8", newline="\n") as f:
    json.dump(document, f, indent=2, ensure_ascii=False)
    f.write("\n")
print(f"wrote {len(document['vectors'])} vectors to {path}")
