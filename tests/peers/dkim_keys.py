"""DKIM for tests: real signing keys, and the DNS answers that publish their public halves.

Only the DNS lookup is stood in for (``txt_record`` is configured as ``smtp.dkim_dns``):
signing and verification are dkimpy's real code over real RSA keys. Keys are made once per
test process and per domain.
"""

from __future__ import annotations

import base64

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

SELECTOR = "test"
DNS_FUNCTION = "peers.dkim_keys:txt_record"  # the value for smtp.dkim_dns

_private: dict[str, bytes] = {}  # domain -> PKCS#1 PEM
_published: dict[bytes, bytes] = {}  # "<selector>._domainkey.<domain>." -> TXT record


def _key(domain: str) -> bytes:
    if domain not in _private:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _private[domain] = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,  # PKCS#1, what dkimpy reads
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        name = f"{SELECTOR}._domainkey.{domain}.".encode()
        _published[name] = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    return _private[domain]


SIGNED_FIELDS = ("from", "to", "cc", "subject", "date", "message-id")


def sign(raw: bytes, domain: str, *, length: bool = False,
         fields: tuple[str, ...] = SIGNED_FIELDS) -> bytes:
    """``raw`` with a DKIM-Signature of ``domain`` prepended (relaxed/simple) covering
    ``fields`` (``h=``)."""
    header: bytes = dkim.sign(
        raw, SELECTOR.encode(), domain.encode(), _key(domain),
        include_headers=[name.encode() for name in fields], length=length,
    )
    return header + raw


def txt_record(name: bytes | str, timeout: float = 5) -> bytes | None:
    """dkimpy's ``dnsfunc``: the TXT record published for ``name``, None when there is none."""
    key = name.encode() if isinstance(name, str) else name
    return _published.get(key if key.endswith(b".") else key + b".")
