"""``crm-gateway api-tokens ...``: bearer tokens of the JSON API (never of CalDAV)."""

from __future__ import annotations

import argparse
from typing import Any

from gateway import api_tokens
from gateway.cli.base import Context, iso
from gateway.models import ApiToken


def register(commands: Any) -> None:
    group = commands.add_parser("api-tokens", help="tokens of the JSON API")
    sub = group.add_subparsers(dest="api_tokens_command", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="issue a token (printed once)")
    create.add_argument("--name", required=True)
    create.add_argument("--scope", choices=api_tokens.SCOPES, default=api_tokens.ADMIN,
                        help="admin: everything; read: GET only (default admin)")
    create.set_defaults(handler=do_create)
    sub.add_parser("list", help="list tokens (never the secrets)").set_defaults(handler=do_list)
    revoke = sub.add_parser("revoke", help="revoke a token: refused from its next request on")
    revoke.add_argument("token", metavar="ID|NAME")
    revoke.set_defaults(handler=do_revoke)


def describe(row: ApiToken) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "scope": row.scope,
            "created": iso(row.created_at), "last_used": iso(row.last_used_at),
            "revoked": iso(row.revoked_at)}


def _line(row: ApiToken) -> str:
    used = f"last used {row.last_used_at:%Y-%m-%d %H:%M} UTC" if row.last_used_at \
        else "never used"
    revoked = ", revoked" if row.revoked_at else ""
    return f"{row.id:>4}  {row.name:<24} {row.scope:<6} ({used}{revoked})"


def do_create(context: Context, args: argparse.Namespace) -> int:
    with context.store.transaction() as session:
        issued = api_tokens.create_token(session, args.name, args.scope)
    context.emit(
        {"id": issued.id, "name": issued.name, "scope": issued.scope, "token": issued.token},
        [f"API token {issued.name} ({issued.scope}): {issued.token}",
         "It is shown only this once."])
    return 0


def do_list(context: Context, _args: argparse.Namespace) -> int:
    with context.store.reading() as session:
        rows = api_tokens.list_tokens(session)
        context.emit([describe(r) for r in rows], [_line(r) for r in rows] or ["no API tokens"])
    return 0


def do_revoke(context: Context, args: argparse.Namespace) -> int:
    with context.store.transaction() as session:
        row = api_tokens.revoke_token(session, args.token)
        data = describe(row)
    context.emit(data, f"revoked API token {data['name']}")
    return 0
