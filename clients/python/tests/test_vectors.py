"""Every vector of proto/vectors/vectors.json, byte for byte (SPEC §17).

The vectors are the contract; this file must fail loudly if they cannot be found.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bursar import protocol as p
from bursar.errors import ProtocolError
from bursar.types import CheckResult, SettleResult


def _vectors_path() -> Path:
    env = os.environ.get("BURSAR_VECTORS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "proto" / "vectors" / "vectors.json"


PATH = _vectors_path()
if not PATH.is_file():  # loud, not a skip
    raise RuntimeError(f"vectors.json not found at {PATH} (set BURSAR_VECTORS)")
DOC = json.loads(PATH.read_text())
VECTORS = DOC["vectors"]


def test_vector_file_is_complete():
    assert DOC["version"] == 1
    assert len(VECTORS) == 163
    kinds = {k for v in VECTORS for k in ("frame", "error", "incomplete") if k in v}
    assert kinds == {"frame", "error", "incomplete"}


def _rid(r: int) -> dict:
    """The vectors' form of an opaque reservation id: its first and last 8 bytes, under their
    historical names (proto/vectors/README.md)."""
    raw = r.to_bytes(16, "big")
    return {"org_id": int.from_bytes(raw[:8], "big"), "sequence": int.from_bytes(raw[8:], "big")}


def fields_of(frame: p.Frame) -> dict:
    """The vector's field dictionary for a decoded frame (spec names)."""
    t, rid, b = frame
    out = {"type": int(t), "type_name": t.name_str, "request_id": rid}
    if isinstance(b, p.CheckRequest):
        out.update(key_digest=b.key_digest.hex(), model=b.model, input_tokens=b.input_tokens,
                   max_output_tokens=b.max_output_tokens, estimated_cost=b.estimated_cost)
    elif isinstance(b, p.SettleRequest):
        out.update(reservation=_rid(b.reservation), input_tokens=b.input_tokens,
                   output_tokens=b.output_tokens, cost=b.cost)
    elif isinstance(b, p.ReleaseRequest):
        out.update(reservation=_rid(b.reservation))
    elif isinstance(b, p.AuthRequest):
        out.update(credential_digest=b.credential_digest.hex())
    elif isinstance(b, CheckResult):
        out.update(decision=int(b.allowed), decision_name="allow" if b.allowed else "deny",
                   reason=int(b.reason), reason_name=b.reason.name_str, key_flags=b.key_flags,
                   retry_after_ms=b.retry_after_ms, reservation=_rid(b.reservation))
        for name in CheckResult.__slots__[5:-1]:
            out[name] = getattr(b, name)
    elif isinstance(b, SettleResult):
        out.update(status=int(b.status), status_name=b.status.name_str,
                   cost_delta=b.cost_delta, token_delta=b.token_delta)
    elif isinstance(b, p.ErrorFrame):
        out.update(code=int(b.code), code_name=b.code.name_str, message=b.message)
    return out


def frame_from_fields(f: dict) -> p.Frame:
    """Build a Frame from a vector's fields, independently of the decoder."""
    t = p.FrameType(f["type"])
    rid = f["request_id"]

    def res(d):
        return int.from_bytes(d["org_id"].to_bytes(8, "big") + d["sequence"].to_bytes(8, "big"), "big")

    if t == p.FrameType.CHECK:
        body = p.CheckRequest(bytes.fromhex(f["key_digest"]), f["model"], f["input_tokens"],
                              f["max_output_tokens"], f["estimated_cost"])
    elif t == p.FrameType.SETTLE:
        body = p.SettleRequest(res(f["reservation"]), f["input_tokens"], f["output_tokens"], f["cost"])
    elif t == p.FrameType.RELEASE:
        body = p.ReleaseRequest(res(f["reservation"]))
    elif t == p.FrameType.AUTH:
        body = p.AuthRequest(bytes.fromhex(f["credential_digest"]))
    elif t == p.FrameType.AUTH_RESULT:
        body = p.AuthResult()
    elif t == p.FrameType.CHECK_RESULT:
        names = CheckResult.__slots__[5:-1]
        body = CheckResult(f["decision"] == 1, p.DenyReason(f["reason"]), f["key_flags"],
                           f["retry_after_ms"], res(f["reservation"]), *[f[n] for n in names])
    elif t in (p.FrameType.SETTLE_RESULT, p.FrameType.RELEASE_RESULT):
        body = SettleResult(p.ReservationStatus(f["status"]), f["cost_delta"], f["token_delta"],
                            t == p.FrameType.RELEASE_RESULT)
    elif t == p.FrameType.ERROR:
        body = p.ErrorFrame(p.ErrorCode(f["code"]), f["message"])
    else:
        body = None
    return p.Frame(t, rid, body)


def ids(vs):
    return [v["name"] for v in vs]


FRAMES = [v for v in VECTORS if "frame" in v]
ERRORS = [v for v in VECTORS if "error" in v]
INCOMPLETE = [v for v in VECTORS if v.get("incomplete")]


@pytest.mark.parametrize("v", FRAMES, ids=ids(FRAMES))
def test_frame_decodes_exactly(v):
    raw = bytes.fromhex(v["hex"])
    got = p.decode_frame(raw, v["direction"])
    assert got is not None
    frame, consumed = got
    assert consumed == len(raw)
    assert fields_of(frame) == v["frame"]
    # every shorter prefix asks for more bytes
    for n in range(len(raw)):
        assert p.decode_frame(raw[:n], v["direction"]) is None, n


@pytest.mark.parametrize("v", FRAMES, ids=ids(FRAMES))
def test_frame_encodes_exactly(v):
    raw = bytes.fromhex(v["hex"])
    assert p.encode_frame(frame_from_fields(v["frame"])) == raw


@pytest.mark.parametrize("v", FRAMES, ids=ids(FRAMES))
def test_frame_is_refused_in_the_other_direction(v):
    other = p.TO_CLIENT if v["direction"] == p.TO_SERVER else p.TO_SERVER
    with pytest.raises(ProtocolError) as e:
        p.decode_frame(bytes.fromhex(v["hex"]), other)
    assert e.value.code == p.ErrorCode.UNEXPECTED_FRAME_TYPE


@pytest.mark.parametrize("v", ERRORS, ids=ids(ERRORS))
def test_error_vector_refused_at_declared_byte(v):
    raw = bytes.fromhex(v["hex"])
    err = v["error"]
    at = err["detected_after"]
    # one byte at a time: "need more" for every shorter prefix, refused at exactly `at` bytes
    dec = p.Decoder(v["direction"])
    for i, byte in enumerate(raw[:at - 1]):
        dec.feed(bytes([byte]))
        assert dec.next() is None, f"refused early, after {i + 1} bytes"
    dec.feed(raw[at - 1:at])
    with pytest.raises(ProtocolError) as e:
        dec.next()
    assert int(e.value.code) == err["code"]
    assert e.value.code.name_str == err["name"]
    assert e.value.request_id == err["request_id"]
    # and the whole stream at once is refused the same way
    with pytest.raises(ProtocolError) as e2:
        p.decode_frame(raw, v["direction"])
    assert (int(e2.value.code), e2.value.request_id) == (err["code"], err["request_id"])


@pytest.mark.parametrize("v", INCOMPLETE, ids=ids(INCOMPLETE))
def test_incomplete_stream_asks_for_more(v):
    raw = bytes.fromhex(v["hex"])
    dec = p.Decoder(v["direction"])
    dec.feed(raw)
    assert dec.next() is None
    assert dec.buffered == len(raw)  # consumed nothing
    with pytest.raises(ProtocolError) as e:
        dec.finish()
    assert e.value.code == p.ErrorCode.TRUNCATED


def test_decoder_splits_a_pipelined_stream():
    frames = [bytes.fromhex(v["hex"]) for v in FRAMES if v["direction"] == p.TO_CLIENT]
    stream = b"".join(frames)
    dec = p.Decoder(p.TO_CLIENT)
    got = []
    for i in range(0, len(stream), 7):  # arbitrary chunking
        dec.feed(stream[i:i + 7])
        while (f := dec.next()) is not None:
            got.append(p.encode_frame(f))
    dec.finish()
    assert got == frames


def test_vectors_cover_every_frame_type_and_error_code():
    assert {f["frame"]["type"] for f in FRAMES} == {int(t) for t in p.FrameType}
    codes = {v["frame"]["code"] for v in FRAMES if v["frame"]["type_name"] == "error"}
    assert codes == {int(c) for c in p.ErrorCode}


def test_auth_vector_is_the_digest_of_the_credential_text():
    v = next(v for v in FRAMES if v["name"] == "auth")
    digest = p.digest("bgw_example-0001")  # SHA-256 of the secret's UTF-8, as for a key
    assert v["frame"]["credential_digest"] == digest.hex()
    assert p.encode_auth(1, digest) == bytes.fromhex(v["hex"])
    assert p.decode_frame(bytes.fromhex(v["hex"]), p.TO_SERVER)[0].body == p.AuthRequest(digest)
    assert p.encode_auth_result(1) == bytes.fromhex(next(v for v in FRAMES if v["name"] == "auth_result")["hex"])


def test_only_the_all_zero_reservation_is_refused():
    """SPEC §5: the id is opaque; the one rule is "not all zero", in encoding and decoding."""
    for ok in (1, 42 << 64, 1 << 127, (1 << 128) - 1):
        assert p.check_reservation(ok) == ok
        frame = p.encode_settle(5, ok, 1, 2, 3)
        assert p.decode_frame(frame, p.TO_SERVER)[0].body == p.SettleRequest(ok, 1, 2, 3)
        assert p.decode_frame(p.encode_release(6, ok), p.TO_SERVER)[0].body == p.ReleaseRequest(ok)
    for bad in (0, -1, 1 << 128):
        with pytest.raises(ValueError, match="reservation"):
            p.check_reservation(bad)
    for frame in (p.encode_settle(7, 0, 1, 1, 1), p.encode_release(8, 0)):
        with pytest.raises(ProtocolError) as e:
            p.decode_frame(frame, p.TO_SERVER)
        assert e.value.code == p.ErrorCode.MALFORMED_FIELD and e.value.request_id in (7, 8)


def test_reservation_text_form():
    import bursar
    r = int.from_bytes(bytes.fromhex("0cd75b39879cbb4f0ea1c379975d0eb0"), "big")
    assert bursar.reservation_hex(r) == "0cd75b39879cbb4f0ea1c379975d0eb0"
    assert bursar.parse_reservation("0cd75b39879cbb4f0ea1c379975d0eb0") == r
    assert bursar.parse_reservation("0CD75B39879CBB4F0EA1C379975D0EB0") == r
    assert bursar.reservation_hex(1) == "0" * 31 + "1"
    for bad in ("0" * 32, "42-1001", "0x" + "1" * 30, "1" * 31, "1" * 33, " " + "1" * 31, "g" * 32, None):
        with pytest.raises(ValueError, match="reservation"):
            bursar.parse_reservation(bad)
    allowed = CheckResult(True, p.DenyReason.NONE, 0, 0, r, 42, 7, 99, 0, 0, 0, 0, 0, 0,
                          0, 0, 0, 0, 0)
    assert allowed.reservation_hex == "0cd75b39879cbb4f0ea1c379975d0eb0"
    assert "reservation=0cd75b39879cbb4f0ea1c379975d0eb0" in repr(allowed)
