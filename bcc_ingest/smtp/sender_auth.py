"""Proof that mail to the shared logging address comes from whom its From header names.

Two means, chosen by ``smtp.sender_auth``: a DKIM signature that verifies (dkimpy) and whose
``d=`` domain aligns with the From domain (RFC 7489 section 3.1.1, relaxed alignment), or a
client address in ``smtp.trusted_networks``. Authentication-Results fields in the message
are never read: anyone can write one.
"""

from __future__ import annotations

import importlib
import ipaddress
import logging
from collections.abc import Callable, Iterable
from typing import Any

import dkim

log = logging.getLogger(__name__)

# dkimpy's dnsfunc: (name, timeout=...) -> the TXT record's bytes, or None.
DnsFunction = Callable[..., Any]
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_SIGNATURES = 5  # each may cost a DNS lookup; real mail carries one to three
DNS_TIMEOUT = 5  # seconds per lookup


def load_dns_function(reference: str) -> DnsFunction | None:
    """``module:function`` from ``smtp.dkim_dns``; None (dkimpy's real DNS) when empty."""
    if not reference:
        return None
    module_name, _, name = reference.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"smtp.dkim_dns: cannot load {reference!r}: {exc}") from None
    if not callable(function):
        raise ValueError(f"smtp.dkim_dns: {reference!r} is not a function")
    resolved: DnsFunction = function
    return resolved


def aligned(signing_domain: str, from_domain: str) -> bool:
    """Relaxed alignment: the same domain, or From in a subdomain of the signer's.

    Without a public-suffix list a one-label signer (``d=com``) is refused outright.
    """
    signer = signing_domain.lower().rstrip(".")
    author = from_domain.lower().rstrip(".")
    if "." not in signer:
        return False
    return author == signer or author.endswith("." + signer)


def dkim_signed_fields(raw: bytes, from_domain: str, dns: DnsFunction | None
                       ) -> frozenset[str] | None:
    """The fields (lower-cased ``h=`` names) covered by the first of the first signatures
    that verifies and aligns with ``from_domain``; None when none does."""
    try:
        verifier = dkim.DKIM(raw, minkey=1024, timeout=DNS_TIMEOUT)
    except dkim.DKIMException:
        return None
    count = sum(1 for name, _ in verifier.headers if name.lower() == b"dkim-signature")
    for index in range(min(count, MAX_SIGNATURES)):
        try:
            valid = verifier.verify(index) if dns is None else verifier.verify(index, dns)
        except dkim.DKIMException as exc:
            log.info("DKIM signature %d not usable: %s", index, exc)
            continue
        fields = verifier.signature_fields
        if not valid or b"l" in fields:
            # l= limits the signed body length: anyone could append text after it.
            continue
        signed = frozenset(name.decode("ascii", "replace") for name in verifier.include_headers)
        if "from" not in signed:
            continue
        if aligned(fields[b"d"].decode("ascii", "replace"), from_domain):
            return signed
    return None


def in_networks(host: str | None, networks: Iterable[IpNetwork]) -> bool:
    """Is the client address ``host`` (as the socket reports it) in one of ``networks``?"""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)
