"""``rtnb serve`` security options: authentication, rate and connection limits, origins, TLS.

Kept apart from ``serve.py`` so the serve verb only wires them in. Defaults
follow docs/security.md: no authentication and no rate limit on loopback (local
notebooks and benchmarks publish far faster than any device); a loud warning
when binding elsewhere without authentication; with ``--auth jwt`` a publish
limit of 1000/s (burst 2000) per connection and per subject.
"""

from __future__ import annotations

import argparse
import os
import ssl
from typing import Any

from ..core.auth import DEFAULT_RATE_LIMIT, RateLimit
from ..server.auth import AccessControl, is_loopback

__all__ = ["add_security_arguments", "authenticator_from_args", "binding_warning", "ssl_context_from_args"]

SECRET_ENVIRONMENT_VARIABLE = "RTNB_SECRET"
#: Connections one address may hold with ``--auth jwt`` unless told otherwise.
DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 1000


def add_security_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("security (see docs/security.md)")
    group.add_argument(
        "--auth",
        choices=["none", "jwt"],
        default="none",
        help="client authentication (default: none; binding beyond 127.0.0.1 without it warns)",
    )
    group.add_argument(
        "--secret",
        default=None,
        metavar="S",
        help=f"HS256 shared secret for --auth jwt (default: ${SECRET_ENVIRONMENT_VARIABLE})",
    )
    group.add_argument("--public-key", default=None, metavar="FILE", help="PEM public key for RS256/ES256 tokens")
    group.add_argument("--jwks", default=None, metavar="FILE", help="JWKS file; tokens pick their key by 'kid'")
    group.add_argument("--audience", default=None, metavar="AUD", help="required 'aud' claim of tokens")
    group.add_argument("--issuer", default=None, metavar="ISS", help="required 'iss' claim of tokens")
    group.add_argument(
        "--auth-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="time a WebSocket has to authenticate before close 4001 (default: 5)",
    )
    group.add_argument(
        "--rate-limit",
        default=None,
        metavar="RATE[/BURST]",
        help="publishes per second per connection and per subject, or 'off' "
        "(default: 1000/2000 with --auth jwt or off loopback, else off)",
    )
    group.add_argument(
        "--max-connections-per-ip",
        type=int,
        default=None,
        metavar="N",
        help=f"connections per client address, 0 for no limit "
        f"(default: {DEFAULT_MAX_CONNECTIONS_PER_ADDRESS} with --auth jwt, else none)",
    )
    group.add_argument("--certfile", default=None, metavar="FILE", help="TLS certificate chain (PEM): serve https/wss")
    group.add_argument("--keyfile", default=None, metavar="FILE", help="TLS private key (PEM) for --certfile")
    group.add_argument(
        "--websocket-compression",
        action="store_true",
        help="accept permessage-deflate (off by default; inflated size bounded by --max-frame-bytes)",
    )


def _rate_limit(args: argparse.Namespace, protected: bool) -> RateLimit | None:
    text = args.rate_limit
    if text is None:
        return DEFAULT_RATE_LIMIT if protected else None
    if text.strip().lower() in ("off", "none", "0"):
        return None
    return RateLimit.parse(text)


def authenticator_from_args(args: argparse.Namespace) -> AccessControl:
    """The authenticator the options describe.

    Raises:
        ValueError: contradictory or incomplete options, with a sentence saying which.
    """
    jwt_mode = args.auth == "jwt"
    protected = jwt_mode or not is_loopback(args.host)
    options: dict[str, Any] = {
        "rate_limit": _rate_limit(args, protected),
        "auth_timeout": args.auth_timeout,
    }
    limit = args.max_connections_per_ip
    if limit is None:
        limit = DEFAULT_MAX_CONNECTIONS_PER_ADDRESS if jwt_mode else 0
    options["max_connections_per_address"] = limit or None
    if not jwt_mode:
        if args.secret or args.public_key or args.jwks:
            raise ValueError("--secret, --public-key and --jwks need --auth jwt")
        return AccessControl.open(**options)
    secret = args.secret or os.environ.get(SECRET_ENVIRONMENT_VARIABLE)
    sources = [
        name
        for name, value in (("--secret", secret), ("--public-key", args.public_key), ("--jwks", args.jwks))
        if value
    ]
    if len(sources) != 1:
        raise ValueError(
            f"--auth jwt needs exactly one of --secret (or ${SECRET_ENVIRONMENT_VARIABLE}), "
            f"--public-key or --jwks; got {', '.join(sources) or 'none'}"
        )
    claims = {"audience": args.audience, "issuer": args.issuer}
    if secret:
        return AccessControl.jwt(secret=secret, **claims, **options)
    return AccessControl.jwt_from_files(public_key_file=args.public_key, jwks_file=args.jwks, **claims, **options)


def ssl_context_from_args(args: argparse.Namespace) -> ssl.SSLContext | None:
    """A server TLS context from ``--certfile``/``--keyfile``, or None.

    Raises:
        ValueError: only ``--keyfile`` given, a file missing or not PEM, named in the message.
    """
    if args.certfile is None and args.keyfile is None:
        return None
    if args.certfile is None:
        raise ValueError("--keyfile needs --certfile")
    for flag, path in (("--certfile", args.certfile), ("--keyfile", args.keyfile)):
        if path is not None and not os.path.isfile(path):
            raise ValueError(f"{flag} {path}: no such file")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(args.certfile, args.keyfile)
    except (OSError, ssl.SSLError) as error:  # unreadable, or not a PEM certificate and its key
        files = args.certfile if args.keyfile is None else f"{args.certfile} and {args.keyfile}"
        raise ValueError(f"--certfile {files}: cannot load a certificate and key: {error}") from None
    return context


def binding_warning(host: str, authenticator: AccessControl) -> str | None:
    """The loud warning for a hub reachable from other machines without authentication."""
    if authenticator.required or is_loopback(host):
        return None
    return (
        "\n"
        f"  !!! WARNING: rtnb serve is bound to {host} WITHOUT AUTHENTICATION. !!!\n"
        "  Anyone who can reach this address can read and publish every topic.\n"
        "  Use --auth jwt --secret S (see 'rtnb token'), bind to 127.0.0.1, or put an\n"
        "  authenticating reverse proxy in front (docs/security.md).\n"
    )
