"""``python -m gateway.tokens``: mint a token for a client, signed with ``PULSE_SECRET``."""

import argparse
import secrets
import sys

from gateway.auth import SUBJECT_RULE, is_printable_subject, mint_token
from gateway.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.tokens", description=__doc__)
    parser.add_argument("sub", nargs="?", help="the client's identity (chat sender name)")
    parser.add_argument(
        "--new-secret", action="store_true", help="print a fresh random PULSE_SECRET and exit"
    )
    parser.add_argument(
        "--ttl", type=float, default=24 * 3600, help="seconds until it expires (default 1 day)"
    )
    parser.add_argument(
        "--subscribe", nargs="*", default=["data:*", "chat:*", "notify:*"], help="channel patterns to read"
    )
    parser.add_argument("--publish", nargs="*", default=["chat:*"], help="channel patterns to publish to")
    args = parser.parse_args(argv)
    if args.new_secret:
        print(secrets.token_urlsafe(32))
        return 0
    if args.sub is None:
        parser.error("give the token's sub (or --new-secret)")
    if not is_printable_subject(args.sub):
        parser.error(f"sub must be {SUBJECT_RULE}")
    settings = get_settings()
    if not settings.auth_enabled or settings.secret is None:
        print("PULSE_SECRET is not set: there is nothing to sign tokens with.", file=sys.stderr)
        return 2
    print(
        mint_token(
            settings.secret.get_secret_value(),
            args.sub,
            ttl=args.ttl,
            subscribe=args.subscribe,
            publish=args.publish,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
