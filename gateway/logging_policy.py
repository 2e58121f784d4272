"""What gets logged and who becomes a contact: the rules the activity service applies.

Shared by ``gateway.activities`` and ``gateway.participants``; the configuration's ``smtp``
section sets them for both mail edges.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config import Config

# Domains anyone can get an address at: they say nothing about a customer's company.
FREE_MAIL_DOMAINS = frozenset({
    "aol.com", "gmail.com", "googlemail.com", "gmx.com", "gmx.de", "gmx.net", "hey.com",
    "hotmail.co.uk", "hotmail.com", "hotmail.fr", "icloud.com", "live.com", "mac.com",
    "mail.com", "mail.ru", "me.com", "msn.com", "outlook.com", "proton.me", "protonmail.com",
    "qq.com", "t-online.de", "web.de", "yahoo.co.uk", "yahoo.com", "yahoo.fr", "yandex.com",
    "yandex.ru", "zoho.com",
})


@dataclass(frozen=True)
class LoggingPolicy:
    """What gets logged and who becomes a contact; see ``gateway.participants``."""

    logging_address: str
    internal_domains: frozenset[str]
    never_log: frozenset[str]  # addresses or domains
    auto_create_contacts: bool
    free_mail_domains: frozenset[str]

    @classmethod
    def from_config(cls, config: Config) -> LoggingPolicy:
        return cls(
            logging_address=config.get("smtp", "logging_address"),
            internal_domains=frozenset(config.get("smtp", "internal_domains")),
            never_log=frozenset(config.get("smtp", "never_log")),
            auto_create_contacts=config.get("smtp", "auto_create_contacts"),
            free_mail_domains=FREE_MAIL_DOMAINS,
        )
