"""``returns-gateway access``: list and revoke API keys and users from a shell.

``returns-gateway access list`` prints every key and user; ``access revoke-key NAME`` and
``access revoke-user NAME`` revoke one (it stops working on the very next request; a
revoked user's browser sessions end at once). The database is ``RS_DATABASE_URL``.
Exit status 0, 1 for an unknown name, 2 for bad arguments or settings.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError
from sqlalchemy import select

from gateway.db import Database
from gateway.models import ApiKey, User
from gateway.services.auth import UnknownName, revoke_api_key, revoke_user
from gateway.settings import Settings


def main(argv: Sequence[str]) -> int:
    """Run one ``access`` command; return the exit status."""
    parser = argparse.ArgumentParser(prog="returns-gateway access")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every API key and user")
    for name in ("revoke-key", "revoke-user"):
        sub.add_parser(name).add_argument("name")
    args = parser.parse_args(list(argv))
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"returns-gateway access: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    db = Database(settings.database_url)
    db.migrate()
    try:
        with db.session() as session:
            if args.command == "list":
                for key in session.scalars(select(ApiKey).order_by(ApiKey.name)):
                    state = "revoked" if key.revoked else "active"
                    print(f"key  {key.name:<24} {key.prefix:<10} {state:<8} {key.scopes}")
                for user in session.scalars(select(User).order_by(User.username)):
                    state = "active" if user.active else "revoked"
                    print(f"user {user.username:<24} {user.role:<10} {state}")
            elif args.command == "revoke-key":
                revoke_api_key(session, args.name)
                print(f"API key {args.name!r} revoked")
            else:
                revoke_user(session, args.name)
                print(f"user {args.name!r} revoked; their sessions ended")
    except UnknownName as exc:
        print(f"returns-gateway access: {exc}", file=sys.stderr)
        return 1
    finally:
        db.dispose()
    return 0
