"""``rtnb token``: mint a JSON Web Token for development and tests.

Example::

    rtnb token --secret S --sub device-7 --publish 'plant/7/#' --subscribe 'plant/7/cmd' --ttl 3600

A summary of the claims goes to stderr; the token is the last line of stdout,
so ``TOKEN=$(rtnb token ...)`` works. Production tokens usually come from an
identity provider instead (``rtnb serve --public-key`` / ``--jwks``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..core.auth import CLAIM_PUBLISH, CLAIM_SUBJECT, CLAIM_SUBSCRIBE
from ..core.errors import InvalidPattern
from ..core.jwt_verifier import check_hs256_secret
from ..core.topics import validate_pattern

__all__ = ["mint_token", "register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "token",
        help="mint a JWT for --auth jwt hubs",
        description="Mint a JSON Web Token carrying topic permissions; prints it as the last line.",
    )
    parser.add_argument("--secret", default=None, metavar="S", help="HS256 shared secret (default: $RTNB_SECRET)")
    parser.add_argument(
        "--private-key",
        default=None,
        metavar="FILE",
        help="PEM private key instead of a secret (RS256 for RSA, ES256 for EC keys)",
    )
    parser.add_argument("--key-id", default=None, metavar="KID", help="'kid' header, to pick the key from a JWKS")
    parser.add_argument("--sub", required=True, metavar="NAME", help="subject: who the token is for")
    parser.add_argument(
        "--publish",
        action="append",
        default=[],
        metavar="PATTERN",
        help="pattern the subject may publish to (repeatable)",
    )
    parser.add_argument(
        "--subscribe",
        action="append",
        default=[],
        metavar="PATTERN",
        help="pattern the subject may subscribe within, history included (repeatable)",
    )
    parser.add_argument(
        "--ttl",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="lifetime in seconds, 0 for a token that never expires (default: 3600)",
    )
    parser.add_argument("--audience", default=None, metavar="AUD", help="'aud' claim")
    parser.add_argument("--issuer", default=None, metavar="ISS", help="'iss' claim")
    parser.set_defaults(handler=run)


def mint_token(
    key: str | bytes,
    subject: str,
    *,
    publish: Sequence[str] = (),
    subscribe: Sequence[str] = (),
    ttl: float | None = 3600.0,
    audience: str | None = None,
    issuer: str | None = None,
    algorithm: str = "HS256",
    key_id: str | None = None,
    now: float | None = None,
    extra_claims: dict[str, Any] | None = None,
) -> str:
    """A signed token with rtnb's claims (see :mod:`rtnb.core.auth`).

    Args:
        key: the HS256 secret, or a PEM private key with ``algorithm`` RS256/ES256.
        ttl: seconds until ``exp``; ``None`` or 0 for no expiry.

    Raises:
        InvalidPattern: a publish or subscribe pattern breaks the naming rules.
    """
    import jwt

    for pattern in (*publish, *subscribe):
        validate_pattern(pattern)
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        CLAIM_SUBJECT: subject,
        CLAIM_PUBLISH: list(publish),
        CLAIM_SUBSCRIBE: list(subscribe),
        "iat": issued,
    }
    if ttl:
        claims["exp"] = issued + max(1, round(ttl))
    if audience is not None:
        claims["aud"] = audience
    if issuer is not None:
        claims["iss"] = issuer
    claims.update(extra_claims or {})
    headers = {"kid": key_id} if key_id else None
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


def _algorithm_for(pem: bytes) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(pem, password=None)
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ES256"
    raise ValueError(f"unsupported private key type {type(key).__name__}; use RSA or EC")


def run(args: argparse.Namespace) -> int:
    try:
        import jwt  # noqa: F401
    except ImportError:
        print("rtnb token: needs PyJWT: pip install 'rtnb[auth]'", file=sys.stderr)
        return 2
    secret = args.secret or os.environ.get("RTNB_SECRET")
    if (secret is None) == (args.private_key is None):
        print("rtnb token: give exactly one of --secret (or $RTNB_SECRET) and --private-key", file=sys.stderr)
        return 2
    if args.ttl < 0:
        print(f"rtnb token: --ttl must be >= 0 seconds (0: never expires), got {args.ttl:g}", file=sys.stderr)
        return 2
    try:
        if args.private_key is not None:
            pem = Path(args.private_key).read_bytes()
            key: str | bytes = pem
            algorithm = _algorithm_for(pem)
        else:
            assert secret is not None
            check_hs256_secret(secret)
            key, algorithm = secret, "HS256"
        token = mint_token(
            key,
            args.sub,
            publish=args.publish,
            subscribe=args.subscribe,
            ttl=args.ttl,
            audience=args.audience,
            issuer=args.issuer,
            algorithm=algorithm,
            key_id=args.key_id,
        )
    except InvalidPattern as error:
        print(f"rtnb token: {error.message}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as error:
        print(f"rtnb token: {error}", file=sys.stderr)
        return 2
    lifetime = f"expires in {args.ttl:g} s" if args.ttl else "never expires"
    print(
        f"token for {args.sub!r} ({algorithm}, {lifetime}); publish: {args.publish or 'nothing'}, "
        f"subscribe: {args.subscribe or 'nothing'}",
        file=sys.stderr,
    )
    print(token)
    return 0
