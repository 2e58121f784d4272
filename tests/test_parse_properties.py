"""Property tests: parse_message never raises, and its result is deterministic and clean."""

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.mail.parse import ParsedEmail, parse_headers, parse_message

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "eml").glob("*.eml"))
SYNTAX = [b"\n", b"\r\n", b"--", b"=", b"=?", b"?=", b":", b";", b'"', b"\xff"]
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(email: ParsedEmail) -> None:
    texts = [email.subject, email.text or "", email.html or "", *email.defects]
    texts += [a.filename for a in email.attachments]
    addresses = [email.sender, *email.to, *email.cc, *email.bcc, *email.reply_to]
    texts += [part for a in addresses if a is not None for part in (a.email, a.name or "")]
    for text in texts:
        text.encode("utf-8")  # no lone surrogates: every value can be stored
    assert "\x00" not in email.subject + (email.text or "") + (email.html or "")
    assert email.key.startswith(("mid:", "fp:"))
    assert email.date is None or email.date.utcoffset() is not None


@PROPERTY
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    check(parse_message(raw))
    parse_headers(raw)


@st.composite
def mutated_fixture(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(st.sampled_from(FIXTURES)).read_bytes())
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(raw)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate"]))
        if action == "flip" and position < len(raw):
            raw[position] = draw(st.integers(0, 255))
        elif action == "insert":
            raw[position:position] = draw(st.sampled_from(SYNTAX))
        elif action == "delete":
            del raw[position : position + draw(st.integers(1, 64))]
        elif action == "truncate":
            del raw[position:]
        elif action == "duplicate":
            raw[position:position] = raw[position : position + draw(st.integers(1, 256))]
    return bytes(raw)


@PROPERTY
@given(mutated_fixture())
def test_mutated_fixtures_never_raise_and_parse_deterministically(raw: bytes) -> None:
    email = parse_message(raw)
    check(email)
    assert parse_message(raw) == email  # the dedupe key is stable across re-parsing


@PROPERTY
@given(st.text(max_size=300), st.sampled_from(["Subject", "From", "To", "Date", "Message-ID"]))
def test_arbitrary_header_text_never_raises(value: str, name: str) -> None:
    raw = f"{name}: {value}\r\nContent-Type: text/plain\r\n\r\nbody"
    check(parse_message(raw.encode("utf-8", "surrogatepass")))
