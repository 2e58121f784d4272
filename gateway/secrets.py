"""Mailbox secrets encrypted at rest with a key derived from ``security.secret_key``.

Fernet (AES-128-CBC with HMAC-SHA256) under a key that HKDF-SHA256 derives from the configured
secret, so the configured string can have any length and form. A secret stored under another
key fails to decrypt with a message saying what to do; it is never guessed at or printed.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.errors import DomainError

# Fixed salt and context: changing either would orphan every stored secret.
_SALT = b"crm-gateway secret box v1"
_INFO = b"mail account secret"


class SecretError(DomainError):
    """A stored secret cannot be decrypted with the configured key."""


class SecretBox:
    """Encrypts and decrypts mailbox secrets with one configured key."""

    def __init__(self, secret_key: str) -> None:
        if not secret_key:
            raise SecretError("security.secret_key is empty: no key to encrypt secrets with")
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=_SALT, info=_INFO
        ).derive(secret_key.encode("utf-8"))
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode("utf-8"))

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(bytes(token)).decode("utf-8")
        except (InvalidToken, UnicodeDecodeError):
            raise SecretError(
                "the stored mailbox password cannot be decrypted with the configured "
                "security.secret_key (was the key changed?); store it again with 'mail set'"
            ) from None
