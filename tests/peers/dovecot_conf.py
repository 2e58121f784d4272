"""The private dovecot.conf of a test instance (Dovecot 2.3 syntax).

Nothing is read from /etc/dovecot: every setting the instance depends on is written here, so
the suite behaves the same whatever the machine's own Dovecot configuration says.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .tls import TlsFiles

# maildir is what docs/TESTING.md describes and most servers use; mdbox stores many messages
# per file and fills a folder about ten times faster (creating files dominates maildir).
Storage = Literal["maildir", "mdbox"]
_MAIL_LOCATION: dict[Storage, str] = {"maildir": "maildir:~/Maildir", "mdbox": "mdbox:~/mdbox"}


@dataclass(frozen=True)
class DovecotSettings:
    """What varies between instances. `tls_port` 0 means no implicit-TLS listener."""

    root: Path
    log_path: Path
    passwd_path: Path
    port: int
    tls_port: int
    tls: TlsFiles | None
    login_user: str
    internal_user: str
    internal_group: str
    mail_uid: int
    mail_gid: int
    separator: str
    storage: Storage
    auth_delays: bool

    @property
    def base_dir(self) -> Path:
        return self.root / "run"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"


def _ssl_settings(settings: DovecotSettings) -> str:
    if settings.tls is None:
        return "ssl = no\n"
    # ssl = yes (not "required"): STARTTLS is offered, plaintext LOGIN stays allowed.
    return (
        "ssl = yes\n"
        f"ssl_cert = <{settings.tls.cert_path}\n"
        f"ssl_key = <{settings.tls.key_path}\n"
        "ssl_min_protocol = TLSv1.2\n"
    )


def _auth_delay_settings(settings: DovecotSettings) -> str:
    if settings.auth_delays:
        return ""
    # A failed login is answered after auth_failure_delay (2 s), and anvil's penalty then
    # delays every login from the same IP by up to 15 s. All clients here are 127.0.0.1, so
    # one wrong-password test would slow every later login. Trusted networks skip the penalty
    # (login-common sends "no-penalty" for trusted clients).
    return "auth_failure_delay = 0\nlogin_trusted_networks = 127.0.0.0/8\n"


def render(settings: DovecotSettings) -> str:
    """The complete dovecot.conf text."""
    name = f"crm-test-{settings.port}"
    return f"""\
# Written by tests/peers/dovecot.py for one test instance; see docs/TESTING.md.
instance_name = {name}
protocols = imap
listen = 127.0.0.1
base_dir = {settings.base_dir}
state_dir = {settings.state_dir}
log_path = {settings.log_path}
auth_verbose = yes
{_ssl_settings(settings)}\
disable_plaintext_auth = no
auth_mechanisms = plain login
{_auth_delay_settings(settings)}\
# imap-login refuses to run as root, and a mail uid below first_valid_uid is refused.
default_login_user = {settings.login_user}
default_internal_user = {settings.internal_user}
default_internal_group = {settings.internal_group}
first_valid_uid = {settings.mail_uid}
last_valid_uid = {settings.mail_uid}
first_valid_gid = {settings.mail_gid}
last_valid_gid = {settings.mail_gid}
mail_location = {_MAIL_LOCATION[settings.storage]}
# Test data lives only as long as the test: skip fsync so bulk APPENDs are fast.
mail_fsync = never

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {settings.passwd_path}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {settings.passwd_path}
}}

namespace inbox {{
  inbox = yes
  separator = {settings.separator}
  mailbox Sent {{
    special_use = \\Sent
    auto = create
  }}
}}

protocol imap {{
  # Every client comes from 127.0.0.1; the default of 10 per user and IP is easy to reach.
  mail_max_userip_connections = 100
}}

service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {settings.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {settings.tls_port}
  }}
}}
service anvil {{
  chroot =
}}
"""
