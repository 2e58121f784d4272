"""Sort a message's decoded leaf entities into text body, html body and attachments.

Rules, in document order:

- A text/plain or text/html leaf is body unless it is `Content-Disposition: attachment` or
  carries a filename (a named .txt or .html is a file the sender attached).
- Inside a multipart/alternative, each of text and html comes from one branch only, the
  first that has it; the same kind in a later branch is a redundant rendering and dropped.
- Several body leaves of one kind outside that rule (Apple Mail splits the text around
  inline images; lists append a footer part) are concatenated in order, so no text is lost.
- Body text is decoded to str (see `charsets`) with CRLF line ends turned into LF.
- Every other leaf is an attachment. An attached message (message/rfc822, message/global)
  keeps its raw bytes and is not searched for body text: it is someone else's mail.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass

from gateway.mail.charsets import decode_text
from gateway.mail.mime_tree import Leaf

_BODY_TYPES = frozenset({"text/plain", "text/html"})
_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})
# Only the stdlib's built-in table, not the host's mime.types: names must not vary by host.
_EXTENSIONS = mimetypes.MimeTypes(filenames=())
_EXTRA_EXTENSIONS = {"text/calendar": ".ics", "message/global": ".eml"}


@dataclass(frozen=True)
class ParsedAttachment:
    """One attached or inline file.

    `filename` is decoded (RFC 2231/2047) and stripped of directories; when the sender gave
    none it is generated from the attachment's 1-based position: "message-2.eml" for an
    attached message, otherwise "attachment-3" plus an extension for the content type
    (".bin" when unknown). `data` is the decoded payload (for an attached message, its raw
    RFC 5322 bytes). `inline` is true for `Content-Disposition: inline`, and for a part
    without a disposition that has a Content-ID (an image the html refers to as `cid:`).
    """

    filename: str
    content_type: str
    data: bytes
    inline: bool
    content_id: str | None


class BodyCollector:
    """Receives decoded leaves one by one; see the module docstring for the rules."""

    def __init__(self) -> None:
        self.attachments: list[ParsedAttachment] = []
        self._bodies: dict[str, list[str]] = {"text/plain": [], "text/html": []}
        self._branch: dict[tuple[int, str], int] = {}  # (alternative id, kind) -> branch

    def add(self, leaf: Leaf, data: bytes, defects: list[str]) -> None:
        """Take one leaf whose transfer encoding is already decoded into `data`."""
        content = leaf.content
        is_body = (
            content.content_type in _BODY_TYPES
            and content.disposition != "attachment"
            and content.filename is None
        )
        if not is_body:
            self.attachments.append(self._attachment(leaf, data))
        elif self._first_branch(leaf, content.content_type):
            decoded = decode_text(data, content.charset, detect=True)
            if decoded.note:
                defects.append(f"part {leaf.path}: {decoded.note}")
            # SMTP and IMAP deliver CRLF, an .eml on disk has LF: the stored body has LF.
            self._bodies[content.content_type].append(decoded.text.replace("\r\n", "\n"))

    @property
    def text(self) -> str | None:
        """The text/plain body, or None when the message has none."""
        return _join(self._bodies["text/plain"])

    @property
    def html(self) -> str | None:
        """The text/html body, or None when the message has none."""
        return _join(self._bodies["text/html"])

    def _first_branch(self, leaf: Leaf, kind: str) -> bool:
        for alternative, branch in leaf.alternatives:
            if self._branch.get((alternative, kind), branch) != branch:
                return False
        for alternative, branch in leaf.alternatives:
            self._branch[(alternative, kind)] = branch
        return True

    def _attachment(self, leaf: Leaf, data: bytes) -> ParsedAttachment:
        content = leaf.content
        number = len(self.attachments) + 1
        filename = content.filename
        if filename is None and content.content_type in _MESSAGE_TYPES:
            filename = f"message-{number}.eml"
        elif filename is None:
            extension = _EXTRA_EXTENSIONS.get(content.content_type)
            extension = extension or _EXTENSIONS.guess_extension(content.content_type) or ".bin"
            filename = f"attachment-{number}{extension}"
        inline = content.disposition == "inline" or (
            content.disposition is None and content.content_id is not None
        )
        return ParsedAttachment(filename, content.content_type, data, inline, content.content_id)


def _join(texts: list[str]) -> str | None:
    if not texts:
        return None
    joined = texts[0]
    for text in texts[1:]:
        joined += text if joined.endswith("\n") or not joined else "\n" + text
    return joined
