"""Which folders of a mailbox are polled: the configured ones (INBOX by default) and Sent.

The Sent folder is the one the server flags ``\\Sent`` (SPECIAL-USE, RFC 6154); servers
without the extension get the names mail clients commonly use, also below an ``INBOX.``
or ``INBOX/`` prefix (Courier and Cyrus put every folder under INBOX).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bcc_ingest.imap.wire import ListedFolder

SENT_NAMES = ("Sent", "Sent Items", "Sent Messages", "[Gmail]/Sent Mail")
_INBOX_PREFIXES = ("", "INBOX.", "INBOX/")


@dataclass(frozen=True)
class FolderPlan:
    folders: tuple[str, ...]  # in polling order, Sent last
    sent: str | None
    sent_found_by: str | None  # "SPECIAL-USE \\Sent" or "its name"


def find_sent(listed: Sequence[ListedFolder]) -> tuple[str, str] | None:
    """(folder name, how it was found), or None."""
    for folder in listed:
        if "\\sent" in folder.attributes and folder.selectable:
            return folder.name, "SPECIAL-USE \\Sent"
    names = {folder.name.lower(): folder.name for folder in listed if folder.selectable}
    for prefix in _INBOX_PREFIXES:
        for name in SENT_NAMES:
            found = names.get((prefix + name).lower())
            if found is not None:
                return found, "its name"
    return None


def plan_folders(configured: Sequence[str], listed: Sequence[ListedFolder]) -> FolderPlan:
    """The configured folders plus the Sent folder, each once."""
    folders = list(dict.fromkeys(configured))
    sent = find_sent(listed)
    if sent is not None and sent[0] not in folders:
        folders.append(sent[0])
    return FolderPlan(
        folders=tuple(folders),
        sent=sent[0] if sent else None,
        sent_found_by=sent[1] if sent else None,
    )


def sent_hint(configured: Sequence[str]) -> str:
    """What to tell a rep whose server shows no Sent folder."""
    return (
        "no Sent folder found (none flagged \\Sent, none named "
        + ", ".join(SENT_NAMES)
        + "); sent mail is not logged unless you name the folder, e.g. --folders "
        + ",".join([*configured, "NAME"])
    )
