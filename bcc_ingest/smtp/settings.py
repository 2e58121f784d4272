"""The BCC listener's settings, resolved from the configuration once, at start-up.

Everything that can be wrong (a TLS file that does not load, a DNS function that does not
import) fails here, before the listener binds, with a message naming the option.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass

from bcc_ingest.smtp.decisions import IntakeSettings
from bcc_ingest.smtp.queue_worker import ProcessingSettings
from bcc_ingest.smtp.sender_auth import load_dns_function
from gateway.config import Config
from gateway.logging_policy import LoggingPolicy


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    hostname: str  # greeting and EHLO name
    max_message_bytes: int
    tls_context: ssl.SSLContext | None  # None: no STARTTLS
    idle_timeout: float
    max_commands: int  # per command name, per session
    workers: int
    intake: IntakeSettings
    processing: ProcessingSettings
    policy: LoggingPolicy

    @classmethod
    def from_config(cls, config: Config) -> SmtpSettings:
        host, _, port = config.get("smtp", "listen").rpartition(":")
        logging_address: str = config.get("smtp", "logging_address")
        return cls(
            host=host.strip("[]"),
            port=int(port),
            hostname=config.get("smtp", "hostname") or logging_address.rpartition("@")[2],
            max_message_bytes=config.get("smtp", "max_message_bytes"),
            tls_context=tls_context(config.get("smtp", "tls_cert"), config.get("smtp", "tls_key")),
            idle_timeout=float(config.get("smtp", "idle_timeout_seconds")),
            max_commands=config.get("smtp", "max_commands"),
            workers=config.get("smtp", "workers"),
            intake=IntakeSettings(
                logging_address=logging_address,
                sender_auth=frozenset(config.get("smtp", "sender_auth")),
                trusted_networks=tuple(
                    ipaddress.ip_network(n) for n in config.get("smtp", "trusted_networks")
                ),
                dkim_dns=load_dns_function(config.get("smtp", "dkim_dns")),
            ),
            processing=ProcessingSettings(
                max_attempts=config.get("smtp", "max_attempts"),
                retry_delay=float(config.get("smtp", "retry_delay_seconds")),
                lease_seconds=float(config.get("smtp", "processing_lease_seconds")),
            ),
            policy=LoggingPolicy.from_config(config),
        )


def tls_context(cert: str, key: str) -> ssl.SSLContext | None:
    """A server context for STARTTLS, or None when neither file is configured."""
    if not cert and not key:
        return None
    if not cert or not key:
        raise ValueError("smtp.tls_cert and smtp.tls_key: give both, or neither")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"smtp.tls_cert/smtp.tls_key: cannot load {cert} and {key}: "
                         f"{getattr(exc, 'strerror', None) or exc}") from None
    return context
