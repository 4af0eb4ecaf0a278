"""JSON Web Token verification: a token in, its verified claims out.

Verifying a token is computation, not I/O: a signature is checked against a
key the hub was given when it started, and the claims' times against the
clock. So it lives in the core, beside :mod:`rtnb.core.auth`, which turns the
claims into :class:`~rtnb.core.auth.Permissions`; the server's
:mod:`rtnb.server.auth` only finds the token in a request and calls
:meth:`JwtVerifier.verify`. Reading keys from files stays with the adapters.

PyJWT (the ``auth`` extra) is imported only when a verifier is built, so the
core installs and imports light.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .errors import Unauthorized

__all__ = ["MIN_HS256_SECRET_BYTES", "JwtVerifier", "check_hs256_secret"]


#: Shortest HS256 secret accepted: RFC 7518 section 3.2 requires a key of at least the hash size.
MIN_HS256_SECRET_BYTES = 32

_ASYMMETRIC = {"RSA": ["RS256", "RS384", "RS512"], "EC": ["ES256", "ES384", "ES512"], "OKP": ["EdDSA"]}


def check_hs256_secret(secret: str | bytes) -> None:
    """Raises:
    ValueError: ``secret`` is shorter than :data:`MIN_HS256_SECRET_BYTES` bytes (RFC 7518 section 3.2):
        a short HMAC key can be brute-forced from any token it signed.
    """
    size = len(secret.encode() if isinstance(secret, str) else secret)
    if size < MIN_HS256_SECRET_BYTES:
        raise ValueError(
            f"the HS256 secret is {size} bytes; it must be at least {MIN_HS256_SECRET_BYTES} (RFC 7518 section 3.2),"
            " e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )


class JwtVerifier:
    """Checks JSON Web Tokens and returns their claims.

    Exactly one key source: ``secret`` (HS256), ``public_key`` (PEM text; RS256
    or ES256 by its type) or ``jwks`` (a JWKS document, keys chosen by the
    token's ``kid``). Algorithms are fixed by the key, never taken from the
    token, so a token cannot pick ``none`` or HMAC with a public key.

    Args:
        audience: when set, tokens must carry this ``aud``.
        issuer: when set, tokens must carry this ``iss``.
        leeway: seconds of clock skew tolerated on ``exp`` / ``nbf``.

    Raises:
        ValueError: no key source, or more than one; an HS256 secret shorter
            than :data:`MIN_HS256_SECRET_BYTES`.
    """

    def __init__(
        self,
        *,
        secret: str | bytes | None = None,
        public_key: str | bytes | None = None,
        jwks: dict[str, Any] | None = None,
        algorithms: Sequence[str] | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        leeway: float = 0.0,
    ) -> None:
        import jwt

        if sum(source is not None for source in (secret, public_key, jwks)) != 1:
            raise ValueError("give exactly one of secret, public_key or jwks")
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway
        self._key: Any = None
        self._keys_by_id: dict[str | None, Any] = {}
        if secret is not None:
            check_hs256_secret(secret)
            self._key = secret
            self.algorithms = list(algorithms or ["HS256"])
        elif public_key is not None:
            key = jwt.PyJWK.from_dict(_jwk_from_pem(public_key))
            self._key = key.key
            self.algorithms = list(algorithms or _ASYMMETRIC.get(key.key_type or "", []))
        else:
            assert jwks is not None
            key_set = jwt.PyJWKSet.from_dict(jwks)
            for key in key_set.keys:
                self._keys_by_id[key.key_id] = key
            self.algorithms = list(algorithms or sorted({alg for k in key_set.keys for alg in _algorithms_of(k)}))
        if not self.algorithms:
            raise ValueError("cannot tell which algorithms the key is for; pass algorithms=")

    def verify(self, token: str) -> dict[str, Any]:
        """The verified claims of ``token``.

        Raises:
            Unauthorized: unreadable, bad signature, expired, not yet valid,
                wrong audience or issuer; the message says which.
        """
        import jwt

        options: Any = {"require": ["sub"]}
        try:
            key = self._key if self._key is not None else self._key_for(token)
            return jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options=options,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The token has expired; get a new one.") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized("The token is not valid yet (nbf/iat in the future).") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized(f"The token is not meant for this hub (audience must be {self.audience!r}).") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized(f"The token was not issued by {self.issuer!r}.") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("The token's signature does not verify.") from None
        except jwt.MissingRequiredClaimError as error:
            raise Unauthorized(f"The token lacks the {error.claim!r} claim.") from None
        except jwt.InvalidAlgorithmError:
            accepted = ", ".join(self.algorithms)
            raise Unauthorized(f"The token's algorithm is not accepted here (accepted: {accepted}).") from None
        except jwt.PyJWTError as error:
            raise Unauthorized(f"The token is not a valid JWT: {error}.") from None

    def _key_for(self, token: str) -> Any:
        import jwt

        key_id: str | None = jwt.get_unverified_header(token).get("kid")
        key = self._keys_by_id.get(key_id)
        if key is None and key_id is None and len(self._keys_by_id) == 1:
            key = next(iter(self._keys_by_id.values()))
        if key is None:
            raise Unauthorized(f"The token's key id {key_id!r} is not in this hub's key set.")
        return key


def _algorithms_of(key: Any) -> list[str]:
    algorithm = getattr(key, "algorithm_name", None) or key._jwk_data.get("alg")
    return [algorithm] if algorithm and algorithm != "none" else _ASYMMETRIC.get(key.key_type or "", [])


def _jwk_from_pem(pem: str | bytes) -> dict[str, Any]:
    """A JWK dict for a PEM public key (so PyJWT tells us its type)."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from jwt.algorithms import ECAlgorithm, RSAAlgorithm

    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = load_pem_public_key(data)
    except ValueError as error:
        raise ValueError(f"not a PEM public key: {error}") from None
    jwk: dict[str, Any]
    if isinstance(key, rsa.RSAPublicKey):
        jwk = json.loads(RSAAlgorithm.to_jwk(key))
        return jwk
    if isinstance(key, ec.EllipticCurvePublicKey):
        jwk = json.loads(ECAlgorithm.to_jwk(key))
        return jwk
    raise ValueError(f"unsupported public key type {type(key).__name__}; use RSA or EC")
