#!/usr/bin/env python3
"""Prints the access token of test_jwt.c's fill_claims(), made without libgov:
the claims as json.dumps(sort_keys=True, separators=(",", ":")) (equal to RFC 8785
for these ASCII strings and integers), signed by the `cryptography` package's
Ed25519 with the RFC 8037 A.1 key.  test_jwt.c (python_token) checks that
gov_jwt_sign writes the same bytes and gov_jwt_verify accepts them.

    python3 tests/vectors/jwt/independent_token.py
"""
import base64
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# RFC 8037 A.1 "d"
D = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
NOW = 1700000000
CLAIMS = {
    "iss": "https://gov.example", "sub": "client-1", "aud": "gov-edge",
    "exp": NOW + 600, "nbf": NOW, "iat": NOW,
    "jti": "018c2b6e-4d00-7abc-8def-0123456789ab", "tenant": "demo",
    "scope": "policy:evaluate decisions:read",
    "constitution_hash": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "client_id": "client-1",
}
HEADER = {"alg": "EdDSA", "kid": "k1", "typ": "JWT"}


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def compact(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


signing_input = b64url(compact(HEADER)) + "." + b64url(compact(CLAIMS))
sig = Ed25519PrivateKey.from_private_bytes(D).sign(signing_input.encode())
print(signing_input + "." + b64url(sig))
