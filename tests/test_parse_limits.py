"""Hostile structure is cut at ParseLimits, quickly, returning what was parsed."""

import time

from gateway.mail.parse import DEFAULT_LIMITS, ParsedEmail, ParseLimits, parse_message

SECONDS = 2.0  # the CPU budget on a 2-core machine (process time: other work does not count)


def nested(depth: int) -> bytes:
    """`depth` multipart/mixed levels, each holding "level N" text before the next level."""
    head = [b"From: a@example.com\r\nSubject: deep\r\nMessage-ID: <deep@example.com>\r\n"]
    tail = []
    for level in range(depth):
        head.append(
            b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n"
            b"Content-Type: text/plain\r\n\r\nlevel %d\r\n--b%d\r\n" % (level, level, level, level)
        )
        tail.append(b"\r\n--b%d--\r\n" % level)
    return b"".join(head) + b"Content-Type: text/plain\r\n\r\ninnermost" + b"".join(reversed(tail))


def many_parts(count: int) -> bytes:
    parts = b"".join(
        b"--x\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % number for number in range(count)
    )
    head = b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n"
    return head + parts + b"--x--\r\n"


def timed(raw: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> tuple[ParsedEmail, float]:
    started = time.process_time()
    email = parse_message(raw, limits)
    return email, time.process_time() - started


def test_2000_deep_nesting_is_cut_at_max_depth_quickly() -> None:
    email, seconds = timed(nested(2000))
    assert seconds < SECONDS
    assert email.truncated == "MIME nesting deeper than 20 levels"
    assert email.text is not None
    lines = email.text.splitlines()
    assert lines[0] == "level 0"
    assert lines[-1] == "level 19"  # the level-20 container is skipped whole
    assert "innermost" not in email.text


def test_2000_deep_nesting_parses_fully_when_allowed_without_recursion() -> None:
    # The stdlib parser raises RecursionError here; the walk is iterative.
    email, seconds = timed(nested(2000), ParseLimits(max_depth=2000, max_parts=10_000))
    assert seconds < SECONDS
    assert email.truncated is None
    assert email.text is not None
    assert email.text.splitlines()[-1] == "innermost"
    assert len(email.text.splitlines()) == 2001


def test_50000_parts_are_cut_at_max_parts_quickly() -> None:
    email, seconds = timed(many_parts(50_000))
    assert seconds < SECONDS
    assert email.truncated == "more than 500 MIME parts"
    assert email.text is not None
    lines = email.text.splitlines()
    # 500 entities: the top-level container and 499 text parts.
    assert (lines[0], lines[-1], len(lines)) == ("part 0", "part 498", 499)


def test_part_limit_counts_containers() -> None:
    email = parse_message(nested(10), ParseLimits(max_parts=4))
    # message, level 0 text, level 1 container, level 1 text
    assert email.text == "level 0\nlevel 1"
    assert email.truncated == "more than 4 MIME parts"


def test_decoded_size_limit_drops_the_part_that_exceeds_it_and_stops() -> None:
    raw = many_parts(10)
    email = parse_message(raw, ParseLimits(max_decoded_bytes=len(b"part 0") * 3 + 1))
    assert email.text == "part 0\npart 1\npart 2"
    assert email.truncated == f"decoded content over {len(b'part 0') * 3 + 1} bytes"


def test_within_limits_nothing_is_truncated() -> None:
    email = parse_message(many_parts(10))
    assert email.truncated is None
    assert email.text is not None and len(email.text.splitlines()) == 10
