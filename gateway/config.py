"""One typed configuration schema.

Sources, lowest to highest precedence: built-in defaults < the TOML file (``--config PATH``,
else ``$CRM_GATEWAY_CONFIG``, else ``./crm-gateway.toml`` if present) < environment variables
``CRM_GATEWAY_<SECTION>_<KEY>`` (a list there is comma-separated: ``a,b``). A bad value
raises :class:`ConfigError` whose message names the key, the source and what is expected,
in one line. A secret key is generated into the data folder only when first read.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ENV_PREFIX = "CRM_GATEWAY_"
CONFIG_ENV = "CRM_GATEWAY_CONFIG"
DEFAULT_CONFIG_NAME = "crm-gateway.toml"


class ConfigError(Exception):
    """A configuration value is missing, unknown or of the wrong form."""


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off"}:
        return False
    raise ValueError("a boolean (true/false)")


def _parse_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    raise ValueError("an integer")


def _parse_positive_int(value: Any) -> int:
    number = _parse_int(value)
    if number <= 0:
        raise ValueError("a positive integer")
    return number


def _parse_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise ValueError("a string")


def _parse_listen(value: Any) -> str:
    text = _parse_str(value).strip()
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("HOST:PORT, e.g. 127.0.0.1:5232")
    return text


def _parse_working_hours(value: Any) -> str:
    from gateway.availability import parse_working_hours
    from gateway.errors import Invalid

    try:
        return str(parse_working_hours(_parse_str(value)))
    except Invalid as exc:
        raise ValueError(str(exc)) from None


def _parse_str_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, list) and all(isinstance(part, str) for part in value):
        items = [part.strip() for part in value]
    else:
        raise ValueError("a list of strings (or a comma-separated string)")
    return tuple(item for item in items if item)


def _parse_networks(value: Any) -> tuple[str, ...]:
    items = _parse_str_list(value)
    try:
        return tuple(str(ipaddress.ip_network(item, strict=False)) for item in items)
    except ValueError:
        raise ValueError("a list of IP networks, e.g. [\"10.0.0.0/8\"]") from None


def _parse_email(value: Any) -> str:
    text = _parse_str(value).strip().lower()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", text):
        raise ValueError("an email address")
    return text


def _parse_optional_path(value: Any) -> str:
    return _parse_str(value).strip()


def _parse_non_negative_int(value: Any) -> int:
    number = _parse_int(value)
    if number < 0:
        raise ValueError("an integer, 0 or more")
    return number


_SENDER_AUTH_MEANS = ("dkim", "trusted_networks")


def _parse_sender_auth(value: Any) -> tuple[str, ...]:
    items = tuple(item.lower() for item in _parse_str_list(value))
    if any(item not in _SENDER_AUTH_MEANS for item in items):
        raise ValueError('a list of "dkim" and/or "trusted_networks"')
    return items


def _parse_mail_names(value: Any) -> tuple[str, ...]:
    # Addresses or domains, compared case-insensitively.
    items = tuple(item.lower().rstrip(".") for item in _parse_str_list(value))
    if any(not re.fullmatch(r"([^@\s]+@)?[^@\s]+\.[^@\s]+", item) for item in items):
        raise ValueError("a list of email addresses or domains")
    return items


def _parse_domains(value: Any) -> tuple[str, ...]:
    items = _parse_mail_names(value)
    if any("@" in item for item in items):
        raise ValueError('a list of domains, e.g. ["example.com"]')
    return items


def _parse_function_ref(value: Any) -> str:
    text = _parse_str(value).strip()
    if text and not re.fullmatch(r"[\w.]+:\w+", text):
        raise ValueError("module:function, or empty")
    return text


SMTP_SCHEMES = {"smtp": "plain", "smtps": "tls", "smtp+starttls": "starttls"}


def _parse_smtp_url(value: Any) -> str:
    text = _parse_str(value).strip()
    if not text:
        return ""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError("smtp://, smtps:// or smtp+starttls://[user:password@]host[:port]") \
            from None
    if parts.scheme not in SMTP_SCHEMES or not parts.hostname or (
            parts.path not in ("", "/")) or parts.query or port == 0:
        raise ValueError("smtp://, smtps:// or smtp+starttls://[user:password@]host[:port]")
    return text


def _parse_optional_email(value: Any) -> str:
    return _parse_email(value) if _parse_str(value).strip() else ""


@dataclass(frozen=True)
class Option:
    section: str
    key: str
    parse: Callable[[Any], Any]
    default: Any
    help: str
    expected: str
    example: str = ""  # list options: a value as the environment takes it, "a,b"

    @property
    def is_list(self) -> bool:
        return isinstance(self.default, tuple)

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"

    @property
    def env(self) -> str:
        return f"{ENV_PREFIX}{self.section.upper()}_{self.key.upper()}"


# The schema. conf/gateway.toml documents every entry; a test keeps the two in step.
SCHEMA: tuple[Option, ...] = (
    Option("database", "url", _parse_str, "",
           "SQLAlchemy URL of the store. Empty: an SQLite file var/crm-gateway.sqlite3 in the "
           "data folder. PostgreSQL: postgresql+psycopg://user@host/dbname", "a database URL"),
    Option("paths", "data_dir", _parse_optional_path, "",
           "Data folder (SQLite file, generated secret key). Empty: var/ next to the config "
           "file, or ./var when there is none", "a folder path"),
    Option("http", "listen", _parse_listen, "127.0.0.1:5232",
           "Address of the CalDAV/HTTP site", "HOST:PORT"),
    Option("http", "max_body_bytes", _parse_positive_int, 10 * 1024 * 1024,
           "Largest request body the HTTP site accepts (413 beyond)", "a positive integer"),
    Option("http", "threads", _parse_positive_int, 16,
           "Threads serving CalDAV requests", "a positive integer"),
    Option("http", "max_propfind_properties", _parse_positive_int, 200,
           "Most properties one PROPFIND or PROPPATCH may name (413 beyond)",
           "a positive integer"),
    Option("http", "max_multiget_hrefs", _parse_positive_int, 10000,
           "Most hrefs one REPORT (calendar-multiget) may name (413 beyond)",
           "a positive integer"),
    Option("http", "public_url", _parse_str, "",
           "The address reps and clients reach (https://... behind a TLS proxy): the calendar "
           "URL, QR code, Apple profile, sign-in and invitation links use it, and https makes "
           "the web session cookie Secure. Empty: http://<http.listen>/",
           "a URL"),
    Option("smtp", "listen", _parse_listen, "127.0.0.1:2525",
           "Address of the BCC logging SMTP listener", "HOST:PORT"),
    Option("smtp", "logging_address", _parse_email, "log@crm-gateway.localhost",
           "The shared logging address reps BCC; per-user secret addresses are "
           "log+<token>@ the same domain", "an email address"),
    Option("smtp", "hostname", _parse_str, "",
           "Name the listener gives in its greeting. Empty: the logging address's domain",
           "a host name"),
    Option("smtp", "max_message_bytes", _parse_positive_int, 25 * 1024 * 1024,
           "Largest message accepted, advertised as SIZE; larger mail gets 552",
           "a positive integer"),
    Option("smtp", "tls_cert", _parse_optional_path, "",
           "PEM certificate chain offered with STARTTLS (with tls_key). Empty: no STARTTLS",
           "a file path"),
    Option("smtp", "tls_key", _parse_optional_path, "",
           "PEM private key of tls_cert", "a file path"),
    Option("smtp", "idle_timeout_seconds", _parse_positive_int, 120,
           "A session that sends no command for this long is closed; it also bounds the "
           "transfer of one message", "a positive integer"),
    Option("smtp", "max_commands", _parse_positive_int, 100,
           "How many times one session may send each command (MAIL, RCPT, NOOP, ...) before "
           "it is closed with 421", "a positive integer"),
    Option("smtp", "sender_auth", _parse_sender_auth, ("dkim", "trusted_networks"),
           "How mail to the shared logging address proves its sender: dkim (a valid DKIM "
           "signature aligned with the From domain) and/or trusted_networks. Empty: only the "
           "per-user secret addresses log mail", 'a list of "dkim" and/or "trusted_networks"',
           "dkim,trusted_networks"),
    Option("smtp", "trusted_networks", _parse_networks, (),
           "Client networks (your own outbound relays) whose mail counts as authenticated",
           "a list of IP networks", "10.0.0.0/8,192.0.2.10/32"),
    Option("smtp", "dkim_dns", _parse_function_ref, "",
           "TXT lookup used to verify DKIM signatures, as module:function taking (name, "
           "timeout=...) like dkimpy's dnsfunc. Empty: real DNS", "module:function"),
    Option("smtp", "auto_create_contacts", _parse_bool, True,
           "Make unknown external participants of logged mail CRM contacts", "a boolean"),
    Option("smtp", "internal_domains", _parse_domains, (),
           "Your own domains (subdomains included): their addresses never become contacts, "
           "and mail among them only is not logged", "a list of domains",
           "acme.example,acme-sales.example"),
    Option("smtp", "never_log", _parse_mail_names, (),
           "Addresses or domains (subdomains included) whose mail is never logged",
           "a list of email addresses or domains", "noreply@acme.example,payroll.example"),
    Option("smtp", "workers", _parse_non_negative_int, 1,
           "Threads turning queued messages into activities. 0: this process only accepts "
           "and queues, another one processes", "an integer, 0 or more"),
    Option("smtp", "max_attempts", _parse_positive_int, 5,
           "Tries before a message that cannot be processed is parked as failed",
           "a positive integer"),
    Option("smtp", "retry_delay_seconds", _parse_non_negative_int, 60,
           "Wait before the first retry of a failed processing attempt; doubles each time, "
           "at most an hour", "an integer, 0 or more"),
    Option("smtp", "processing_lease_seconds", _parse_positive_int, 300,
           "A message being processed is not picked up by another worker for this long; "
           "after a crash it is retried once this has passed", "a positive integer"),
    Option("imap", "interval", _parse_positive_int, 300,
           "Seconds between polls of a mailbox; with IDLE, the longest wait before Sent and "
           "INBOX are checked again", "a positive integer"),
    Option("imap", "backfill_days", _parse_non_negative_int, 30,
           "The first poll of a folder (and a rescan after its UIDVALIDITY changed) logs mail "
           "from this many days back", "an integer, 0 or more"),
    Option("imap", "ca_file", _parse_optional_path, "",
           "PEM file of the CAs trusted for IMAP servers' certificates. Empty: the system's "
           "trust store", "a file path"),
    Option("imap", "connect_timeout_seconds", _parse_positive_int, 30,
           "Longest wait for name resolution and the TCP connection", "a positive integer"),
    Option("imap", "command_timeout_seconds", _parse_positive_int, 60,
           "Longest silence from the server while a command (or the TLS handshake) awaits "
           "its answer", "a positive integer"),
    Option("imap", "command_deadline_seconds", _parse_positive_int, 600,
           "Longest time the server may take over one whole answer (or the greeting, or the "
           "TLS handshake), however steadily bytes trickle in; then the connection is dropped",
           "a positive integer"),
    Option("imap", "max_message_bytes", _parse_non_negative_int, 0,
           "Largest message the poller reads whole; a larger one is logged from its headers "
           "alone. 0: smtp.max_message_bytes", "an integer, 0 or more"),
    Option("imap", "max_backoff_seconds", _parse_positive_int, 3600,
           "After failures an account waits 60 s, doubling each time, at most this long",
           "a positive integer"),
    Option("imap", "max_accounts", _parse_positive_int, 50,
           "Mailboxes one poller process works on at once (each IDLE session holds one)",
           "a positive integer"),
    Option("linked", "interval", _parse_positive_int, 300,
           "Seconds between sync passes of a rep's linked calendar account",
           "a positive integer"),
    Option("linked", "timeout_seconds", _parse_positive_int, 30,
           "Longest wait for one answer of a linked CalDAV server", "a positive integer"),
    Option("linked", "max_backoff_seconds", _parse_positive_int, 3600,
           "After failures a linked account waits 60 s, doubling each time, at most this long",
           "a positive integer"),
    Option("linked", "max_links", _parse_positive_int, 10,
           "Linked accounts one process syncs at once", "a positive integer"),
    Option("auth", "parallel_verifications", _parse_positive_int, 1,
           "App password verifications (argon2, ~0.1 s of CPU each) one process runs at once",
           "a positive integer"),
    Option("auth", "account_failures", _parse_positive_int, 5,
           "Failed CalDAV logins for one account before its logins are throttled",
           "a positive integer"),
    Option("auth", "address_failures", _parse_positive_int, 20,
           "Failed CalDAV logins from one client address before its logins are throttled",
           "a positive integer"),
    Option("auth", "throttle_half_life_seconds", _parse_positive_int, 60,
           "Failed logins are forgotten gradually: their count halves this often",
           "a positive integer"),
    Option("auth", "throttle_max_delay_ms", _parse_positive_int, 500,
           "Longest a throttled login waits for its turn; later turns are refused at once",
           "a positive integer"),
    Option("webhooks", "timeout_seconds", _parse_positive_int, 10,
           "Longest wait for a webhook receiver's answer; a slower one counts as a failed "
           "attempt", "a positive integer"),
    Option("webhooks", "first_retry_seconds", _parse_positive_int, 30,
           "Wait before retrying a failed webhook delivery; doubles each time (with jitter), "
           "at most an hour", "a positive integer"),
    Option("webhooks", "retry_for_seconds", _parse_positive_int, 86400,
           "A webhook delivery is retried for this long after its event; then it is failed "
           "('crm-gateway webhooks replay' sends it again)", "a positive integer"),
    Option("webhooks", "poll_seconds", _parse_positive_int, 2,
           "How often a deliverer looks for due webhook deliveries", "a positive integer"),
    Option("webhooks", "workers", _parse_positive_int, 4,
           "Webhook deliveries one process sends at once", "a positive integer"),
    Option("outbound", "enabled", _parse_bool, True,
           "Send mail (notifications to reps, invitations to attendees) through the smarthost "
           "of outbound.smtp_url; false, or no smtp_url: nothing is queued", "a boolean"),
    Option("outbound", "smtp_url", _parse_smtp_url, "",
           "The smarthost: smtp://, smtps:// (TLS) or smtp+starttls://, with user:password@ "
           "when it wants AUTH; empty: the gateway sends no mail",
           "smtp://, smtps:// or smtp+starttls://[user:password@]host[:port]"),
    Option("outbound", "smtp_password", _parse_str, "",
           "The smarthost password, instead of the one in smtp_url (e.g. from the "
           "environment: CRM_GATEWAY_OUTBOUND_SMTP_PASSWORD)", "a string"),
    Option("outbound", "smtp_password_file", _parse_optional_path, "",
           "A file holding the smarthost password (its first line)", "a path"),
    Option("outbound", "ca_file", _parse_optional_path, "",
           "PEM file of the CA(s) the smarthost's TLS certificate is checked against; empty: "
           "the system's", "a path"),
    Option("outbound", "from_address", _parse_optional_email, "",
           "The gateway's own address: envelope sender of every mail, and From of mail not "
           "sent as the organiser; needed when smtp_url is set", "an email address"),
    Option("outbound", "send_as_organizer", _parse_bool, False,
           "Invitations go From the organiser (the smarthost must allow it); false: From the "
           "gateway's address with the organiser's name, Reply-To the organiser", "a boolean"),
    Option("outbound", "timeout_seconds", _parse_positive_int, 30,
           "Longest wait for the smarthost on one connection", "a positive integer"),
    Option("outbound", "first_retry_seconds", _parse_positive_int, 60,
           "Wait before retrying a mail the smarthost deferred (4xx) or could not be reached "
           "for; doubles each time (with jitter), at most an hour", "a positive integer"),
    Option("outbound", "retry_for_seconds", _parse_positive_int, 172800,
           "A deferred mail is retried for this long after it was queued, then failed "
           "('crm-gateway outbound retry' sends it again)", "a positive integer"),
    Option("outbound", "poll_seconds", _parse_positive_int, 2,
           "How often a sender looks for due mail", "a positive integer"),
    Option("outbound", "workers", _parse_positive_int, 2,
           "Mails one process sends at once", "a positive integer"),
    Option("feeds", "window_days_back", _parse_non_negative_int, 90,
           "A calendar feed holds the entries from this many days before today",
           "a non-negative integer"),
    Option("feeds", "window_days_ahead", _parse_non_negative_int, 365,
           "A calendar feed holds the entries up to this many days after today",
           "a non-negative integer"),
    Option("availability", "working_hours", _parse_working_hours, "Mon-Fri 09:00-17:00 UTC",
           "Working hours of users who have none of their own ('users set --working-hours')",
           "days, times and an IANA zone, e.g. 'Mon-Fri 09:00-17:00 Europe/Berlin'"),
    Option("availability", "max_days", _parse_positive_int, 62,
           "The longest window, in days, an availability query or free/busy answer covers",
           "a positive integer"),
    Option("security", "secret_key", _parse_str, "",
           "Key that encrypts mailbox secrets at rest; every process on one database must use "
           "the same one. Empty: generated into the data folder (secret_key file) when first "
           "needed", "a string"),
)

_BY_NAME = {option.name: option for option in SCHEMA}


class Config:
    """Resolved configuration: ``config.get("http", "listen")``."""

    def __init__(self, values: Mapping[str, Any], config_path: Path | None, data_dir: Path):
        self._values = dict(values)
        self.config_path = config_path
        self.data_dir = data_dir

    def get(self, section: str, key: str) -> Any:
        name = f"{section}.{key}"
        if name == "security.secret_key" and not self._values[name]:
            # Generated only when first needed, so commands that never need it write nothing.
            self._values[name] = _generated_secret(self.data_dir)
        return self._values[name]

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)


def find_config_file(explicit: str | None, environ: Mapping[str, str]) -> Path | None:
    if explicit:
        return Path(explicit)
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    candidate = Path.cwd() / DEFAULT_CONFIG_NAME
    return candidate if candidate.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None


def _coerce(option: Option, raw: Any, source: str) -> Any:
    try:
        return option.parse(raw)
    except ValueError as exc:
        expected = str(exc) or option.expected
        raise ConfigError(
            f"{option.name} from {source}: {raw!r} is not valid; expected {expected}"
        ) from None


def _coerce_env(option: Option, raw: str) -> Any:
    """An environment value; a list there is comma-separated, nothing else."""
    if not option.is_list:
        return _coerce(option, raw, f"environment {option.env}")
    if any(mark in raw for mark in '[]"\''):
        raise ConfigError(
            f"{option.env} in the environment: {raw!r} is not valid; a list there is "
            f"comma-separated, without brackets or quotes, e.g. {option.env}={option.example}"
        )
    try:
        return option.parse(raw)
    except ValueError:
        raise ConfigError(
            f"{option.env} in the environment: {raw!r} is not valid; expected "
            f"{option.expected}, comma-separated, e.g. {option.env}={option.example}"
        ) from None


def load(
    explicit_path: str | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    create_data_dir: bool = True,
) -> Config:
    """Resolve the configuration from defaults, the TOML file and the environment."""
    environ = os.environ if environ is None else environ
    path = find_config_file(explicit_path, environ)
    values = {option.name: option.default for option in SCHEMA}

    if path is not None:
        document = _read_toml(path)
        for section, table in document.items():
            if not isinstance(table, dict):
                raise ConfigError(f"{section} in {path}: expected a [{section}] table")
            for key, raw in table.items():
                option = _BY_NAME.get(f"{section}.{key}")
                if option is None:
                    raise ConfigError(f"{section}.{key} in {path}: unknown option")
                values[option.name] = _coerce(option, raw, str(path))

    known_env = {option.env: option for option in SCHEMA}
    for name, raw in environ.items():
        if name.startswith(ENV_PREFIX) and name != CONFIG_ENV:
            env_option = known_env.get(name)
            if env_option is None:
                raise ConfigError(f"{name} in the environment: unknown option")
            values[env_option.name] = _coerce_env(env_option, raw)

    base = path.resolve().parent if path is not None else Path.cwd()
    data_dir = Path(values["paths.data_dir"]) if values["paths.data_dir"] else base / "var"
    if not data_dir.is_absolute():
        data_dir = base / data_dir
    if create_data_dir:
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"paths.data_dir: cannot create {data_dir}: {exc.strerror}"
            ) from None

    if not values["database.url"]:
        values["database.url"] = f"sqlite:///{data_dir / 'crm-gateway.sqlite3'}"
    return Config(values, path, data_dir)


def _generated_secret(data_dir: Path) -> str:
    """Read the data folder's secret key, creating it (mode 0600) on first run."""
    key_file = data_dir / "secret_key"
    try:
        return key_file.read_text().strip()
    except FileNotFoundError:
        pass
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"paths.data_dir: cannot create {data_dir}: {exc.strerror}") from None
    key = secrets.token_urlsafe(32)
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process created it first: theirs wins.
        return key_file.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


def public_base_url(config: Config) -> str:
    """The address people and clients reach, ending in "/": ``http.public_url``, or
    ``http://<http.listen>/`` when it is empty."""
    public = str(config.get("http", "public_url"))
    if public:
        return public if public.endswith("/") else public + "/"
    return f"http://{config.get('http', 'listen')}/"
