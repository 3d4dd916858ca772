"""Protocol unit tests: every client message type, every error code, the binary frame format."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from worldloom.envs.arena import ARENA_ACTIONS
from worldloom.serve import protocol as P

SPEC = ARENA_ACTIONS  # noop, up, down, left, right
CKS = {"arena", "other"}


def parse(data, spec=SPEC):
    return P.parse_message(data if isinstance(data, (str, bytes)) or data is None else json.dumps(data), spec, CKS)


def test_valid_messages():
    assert parse({"type": "action", "action": 4}) == P.Action(4)
    assert parse({"type": "action", "action": "left", "seq": 7}) == P.Action(3, 7)
    assert parse({"type": "action", "action": 0, "seq": None}) == P.Action(0)
    assert parse({"type": "reset"}) == P.Reset()
    assert parse({"type": "reset", "seed": 12, "checkpoint": "other"}) == P.Reset(12, "other")
    assert parse({"type": "truth", "on": True}) == P.Truth(True)
    assert parse({"type": "pause", "on": False}) == P.Pause(False)
    assert parse({"type": "ping"}) == P.Ping()
    assert parse({"type": "ping", "t": 1.5}) == P.Ping(1.5)
    assert parse({"type": "ping", "t": -(2**53)}) == P.Ping(-float(2**53))
    assert parse({"type": "action", "action": 1, "seq": 2**53}) == P.Action(1, 2**53)


@pytest.mark.parametrize("data, code", [
    (b"\x00\x01", "binary_not_accepted"),
    (None, "bad_message"),
    ("x" * (P.MAX_MESSAGE_BYTES + 1), "too_large"),
    ('{"type": "ping", "t": "' + "\u00e9" * 3000 + '"}', "too_large"),  # > 4096 bytes in UTF-8
    ("", "bad_json"),
    ("{", "bad_json"),
    ('{"type": "ping", "t": NaN}', "bad_json"),
    ('{"type": "ping", "t": Infinity}', "bad_json"),
    ("[" * 3000 + "]" * 3000, "too_large"),
    ("[" * 2000 + "]" * 2000, "bad_json"),  # too deep: RecursionError is caught
    ("[" * 50 + "]" * 50, "bad_message"),  # parseable, but not an object
    ("[]", "bad_message"),
    ('"action"', "bad_message"),
    ("{}", "bad_message"),
    ({"type": 3}, "bad_message"),
    ({"type": "fly"}, "unknown_type"),
    ({"type": "action", "action": 1, "extra": 1}, "bad_message"),
    ({"type": "action"}, "bad_field"),
    ({"type": "action", "action": True}, "bad_field"),
    ({"type": "action", "action": 2.0}, "bad_field"),
    ({"type": "action", "action": [1]}, "bad_field"),
    ({"type": "action", "action": None}, "bad_field"),
    ({"type": "action", "action": 5}, "out_of_range"),  # n itself is the model's internal "no action"
    ({"type": "action", "action": -1}, "out_of_range"),
    ({"type": "action", "action": 10**30}, "out_of_range"),
    ({"type": "action", "action": "jump"}, "out_of_range"),
    ({"type": "action", "action": 1, "seq": -1}, "out_of_range"),
    ({"type": "action", "action": 1, "seq": "1"}, "bad_field"),
    ({"type": "reset", "seed": -1}, "out_of_range"),
    ({"type": "reset", "seed": 2**31}, "out_of_range"),
    ({"type": "reset", "seed": 1.5}, "bad_field"),
    ({"type": "reset", "checkpoint": 3}, "bad_field"),
    ({"type": "reset", "checkpoint": "../../etc/passwd"}, "unknown_checkpoint"),
    ({"type": "reset", "checkpoint": "/work/main/checkpoints/arena"}, "unknown_checkpoint"),
    ({"type": "reset", "checkpoint": "ARENA"}, "unknown_checkpoint"),
    ({"type": "truth"}, "bad_field"),
    ({"type": "truth", "on": 1}, "bad_field"),
    ({"type": "pause", "on": "yes"}, "bad_field"),
    ({"type": "ping", "t": "now"}, "bad_field"),
    ('{"type": "ping", "t": 1e400}', "bad_field"),  # json parses an overflowing literal as inf
    ({"type": "ping", "t": 2**53 + 1}, "out_of_range"),
    ({"type": "ping", "t": -1e300}, "out_of_range"),
    ({"type": "ping", "t": True}, "bad_field"),
])
def test_bad_messages_name_their_error(data, code):
    with pytest.raises(P.ProtocolError) as e:
        parse(data)
    assert e.value.code == code
    assert e.value.message and len(e.value.message) < 400
    reply = json.loads(P.error(e.value.code, e.value.message, e.value.ref))
    assert reply["type"] == "error" and reply["code"] == code and reply["message"] == e.value.message


@pytest.mark.parametrize("field", ["ping.t", "action.action", "action.seq", "reset.seed"])
@pytest.mark.parametrize("digits", [309, 400, 4050])  # 4050: near the 4096-byte message limit
def test_huge_integers_are_protocol_errors(field, digits):
    """An integer too large for a float (309+ digits) is out of range, never an OverflowError."""
    kind, key = field.split(".")
    number = "9" * digits
    data = '{"type": "%s", "%s": %s%s}' % (kind, key, number, ', "action": 1' if key == "seq" else "")
    with pytest.raises(P.ProtocolError) as e:
        parse(data)
    assert e.value.code == "out_of_range", e.value.message
    assert len(e.value.message) < 200 and e.value.ref == kind
    with pytest.raises(P.ProtocolError, match="out of range"):  # negative ones too
        P.parse_number(-(10**digits), key, 0, 10, kind)


def test_parse_number_checks_type_finiteness_and_range():
    assert P.parse_number(3, "k", 0, 5) == 3 and P.parse_number(2.5, "k", 0, 5, integer=False) == 2.5
    for v, code in [(True, "bad_field"), (2.0, "bad_field"), ("1", "bad_field"), (None, "bad_field"),
                    (6, "out_of_range"), (-1, "out_of_range"), (10**400, "out_of_range")]:
        with pytest.raises(P.ProtocolError) as e:
            P.parse_number(v, "k", 0, 5)
        assert e.value.code == code, v
    for v, code in [(float("nan"), "bad_field"), (float("inf"), "bad_field"), (-float("inf"), "bad_field"),
                    (5.5, "out_of_range"), (10**400, "out_of_range")]:
        with pytest.raises(P.ProtocolError) as e:
            P.parse_number(v, "k", 0, 5, integer=False)
        assert e.value.code == code, v
    with pytest.raises(P.ProtocolError, match=r"'k' 9 is out of range: valid ids are 0\.\.5"):
        P.parse_number(9, "k", 0, 5, valid="ids are 0..5")


def test_action_before_ready_is_not_ready():
    with pytest.raises(P.ProtocolError) as e:
        parse({"type": "action", "action": 1}, spec=None)
    assert e.value.code == "not_ready"
    assert parse({"type": "reset"}, spec=None) == P.Reset()  # everything else is fine before ready


def test_error_messages_are_helpful():
    with pytest.raises(P.ProtocolError, match=r"valid ids are 0\.\.4"):
        parse({"type": "action", "action": 9})
    with pytest.raises(P.ProtocolError, match="configured"):
        parse({"type": "reset", "checkpoint": "nope"})
    with pytest.raises(P.ProtocolError, match=r"unknown fields \['extra'\]"):
        parse({"type": "truth", "on": True, "extra": 1})


def test_frame_round_trip():
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(2))
    data = P.encode_frame({"step": 3, "seq": 9, "psnr": None}, [a, b])
    n = int.from_bytes(data[:4], "little")
    assert len(data) == 4 + n + 2 * 64 * 64 * 3
    header, panels = P.decode_frame(data)
    assert header == {"type": "frame", "step": 3, "seq": 9, "psnr": None, "width": 64, "height": 64, "panels": 2}
    assert np.array_equal(panels[0], a) and np.array_equal(panels[1], b)
    with pytest.raises(ValueError, match="bytes"):
        P.decode_frame(data[:-1])


def test_every_error_code_and_message_type_is_documented():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md").read_text()
    for code in P.ERROR_CODES:
        assert f"`{code}`" in doc, f"error code {code} missing from docs/PROTOCOL.md"
    for kind in ("action", "reset", "truth", "pause", "ping", "hello", "ready", "frame", "pong", "error",
                 "truth_ended"):
        assert re.search(rf"`{kind}`", doc), f"message type {kind} missing from docs/PROTOCOL.md"
    assert str(P.MAX_MESSAGE_BYTES) in doc
