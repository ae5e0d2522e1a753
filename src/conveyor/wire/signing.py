"""Signed pushes, per Standard Webhooks 1.0 (symmetric scheme).

The platform signs each push; a worker that knows a secret verifies it before it reads the
batch. A signed push carries three headers::

    webhook-id: msg_5f0c…           unique per HTTP push (see new_message_id)
    webhook-timestamp: 1700000000   when the push was sent, integer Unix seconds
    webhook-signature: v1,<b64> v1,<b64>

Each ``v1`` signature is ``base64(HMAC-SHA256(secret, f"{id}.{timestamp}." + body))``, one per
secret the platform lists. Signing with every listed secret is how secrets rotate without
downtime: while the platform lists the old and the new secret, a worker that knows either one
accepts the push (see ``docs/signed-pushes.md``).

Secrets are written ``whsec_<base64>`` (24 to 64 random bytes). This module is pure: no I/O,
no clock (the caller passes the time), only the standard library.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import secrets as _random
from collections.abc import Iterable, Mapping, Sequence

from conveyor.errors import SignatureError

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"

SECRET_PREFIX = "whsec_"  # noqa: S105 - the spec's marker for a secret, not a secret
MIN_SECRET_BYTES = 24
"""The spec's floor: 192 bits."""
MAX_SECRET_BYTES = 64
"""The spec's ceiling: 512 bits (also SHA-256's block, past which HMAC hashes the key)."""
GENERATED_SECRET_BYTES = 32
DEFAULT_TOLERANCE = 300.0
"""Seconds a push's timestamp may be off the verifier's clock, either way (the spec's 5 min)."""
SIGNATURE_VERSION = "v1"

_DIGEST_BYTES = hashlib.sha256().digest_size
_MAX_TIMESTAMP_DIGITS = 12  # enough for year 33658; bounds int() on hostile input


class Reason(enum.StrEnum):
    """Why a push's signature was refused (stable codes, fit for logs and metrics)."""

    MISSING_HEADER = "missing_header"
    """A ``webhook-*`` header is absent or empty."""
    MALFORMED_ID = "malformed_id"
    """The ``webhook-id`` contains a ``.``, which would make the signed content ambiguous."""
    MALFORMED_TIMESTAMP = "malformed_timestamp"
    """The ``webhook-timestamp`` is not integer Unix seconds."""
    STALE = "stale"
    """The timestamp is older than the tolerance: a late or replayed push."""
    FUTURE = "future"
    """The timestamp is further ahead than the tolerance: a clock off, or a forged time."""
    NO_SIGNATURE = "no_signature"
    """The ``webhook-signature`` header holds no well-formed ``v1`` signature."""
    MISMATCH = "mismatch"
    """No signature matches any of the verifier's secrets (wrong secret or tampered push)."""


def generate_secret() -> str:
    """Return a new random secret, ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(_random.token_bytes(GENERATED_SECRET_BYTES)).decode()


def parse_secret(secret: str) -> bytes:
    """Decode a ``whsec_<base64>`` secret into its key bytes.

    Args:
        secret: the secret as written (surrounding whitespace is ignored; the base64 padding
            may be left off).

    Returns:
        The HMAC key.

    Raises:
        ValueError: the prefix is missing, the rest is not base64, or the key is shorter than
            24 or longer than 64 bytes. The message never quotes the secret.
    """
    text = secret.strip()
    if not text.startswith(SECRET_PREFIX):
        raise ValueError(f"a signing secret must start with {SECRET_PREFIX!r}")
    encoded = text.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"a signing secret must be {SECRET_PREFIX}<base64>: {e}") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(
            f"a signing secret must hold {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, "
            f"this one holds {len(key)}"
        )
    return key


def split_secrets(text: str) -> list[str]:
    """Split a list of secrets as given in an option or environment variable.

    Secrets are separated by commas or whitespace (neither occurs in base64), so
    ``"whsec_old, whsec_new"`` gives two. Each is checked with :func:`parse_secret`.

    Raises:
        ValueError: a secret is malformed (its position is named), or there is none.
    """
    items = text.replace(",", " ").split()
    if not items:
        raise ValueError("no signing secret given")
    for position, item in enumerate(items, 1):
        try:
            parse_secret(item)
        except ValueError as e:
            raise ValueError(f"signing secret #{position}: {e}") from None
    return items


def new_message_id() -> str:
    """Return a fresh ``webhook-id``: ``msg_`` and 96 random bits in hex (no ``.``)."""
    return "msg_" + _random.token_hex(12)


def _is_message_id(text: str) -> bool:
    # A '.' would make `id.timestamp.body` ambiguous; the rest must fit in a header verbatim.
    return bool(text) and text.isascii() and text.isprintable() and not {".", " "} & set(text)


def _keys(secrets: Iterable[str]) -> list[bytes]:
    if isinstance(secrets, str):
        raise TypeError("expected a sequence of secrets, got one string")
    keys: list[bytes] = []
    for position, secret in enumerate(secrets, 1):
        try:
            key = parse_secret(secret)
        except ValueError as e:
            raise ValueError(f"signing secret #{position}: {e}") from None
        if key not in keys:
            keys.append(key)
    if not keys:
        raise ValueError("at least one signing secret is needed")
    return keys


def _mac(key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    # Fed in two parts, so a large body is never copied into the signed content.
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode(), hashlib.sha256)
    mac.update(body)
    return mac.digest()


class Signer:
    """Signs pushes with every listed secret (the platform's side).

    Args:
        secrets: one secret, or two while rotating (the old and the new), each
            ``whsec_<base64>``; a repeated secret signs once.

    Raises:
        ValueError: there is no secret, or one is malformed.
        TypeError: ``secrets`` is a single string rather than a sequence.
    """

    def __init__(self, secrets: Sequence[str]) -> None:
        self._keys = _keys(secrets)

    def headers(self, msg_id: str, body: bytes, timestamp: int) -> dict[str, str]:
        """Return the three ``webhook-*`` headers that sign ``body``.

        Args:
            msg_id: the push's id (see :func:`new_message_id`): printable ASCII, without
                ``.`` or spaces.
            body: the exact bytes sent.
            timestamp: the send time, integer Unix seconds.

        Returns:
            ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature``, the last holding
            one ``v1,<base64>`` per secret, space-separated, in the order listed.

        Raises:
            ValueError: ``msg_id`` is empty or malformed, or ``timestamp`` is negative.
        """
        if not _is_message_id(msg_id):
            raise ValueError(
                f"a webhook-id must be printable ASCII without '.' or spaces, got {msg_id!r}"
            )
        if timestamp < 0:
            raise ValueError(f"timestamp must be >= 0, got {timestamp}")
        stamp = str(int(timestamp))
        signatures = " ".join(
            f"{SIGNATURE_VERSION},{base64.b64encode(_mac(key, msg_id, stamp, body)).decode()}"
            for key in self._keys
        )
        return {ID_HEADER: msg_id, TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: signatures}


def _header(headers: Mapping[str, str], name: str) -> str:
    # A case-insensitive mapping (aiohttp's request.headers) answers the first lookup.
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    if value is None or not value.strip():
        raise SignatureError(Reason.MISSING_HEADER, f"the {name} header is missing")
    return value.strip()


def _signatures(header: str) -> list[bytes]:
    """The well-formed ``v1`` signatures of a ``webhook-signature`` header; others skipped."""
    found: list[bytes] = []
    for item in header.split():
        version, _, encoded = item.partition(",")
        if version != SIGNATURE_VERSION:
            continue  # another scheme (v1a) or garbage: the spec says try the next one
        try:
            signature = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if len(signature) == _DIGEST_BYTES:
            found.append(signature)
    return found


class Verifier:
    """Checks a push's signature (the worker's side).

    A push passes when its timestamp is within ``tolerance`` of ``now`` and one of its ``v1``
    signatures matches one of this verifier's secrets.

    Args:
        secrets: the secrets to accept, one or two (during a rotation), each
            ``whsec_<base64>``.
        tolerance: seconds the timestamp may be off ``now``, either way.

    Raises:
        ValueError: there is no secret, one is malformed, or ``tolerance`` is not positive.
        TypeError: ``secrets`` is a single string rather than a sequence.
    """

    def __init__(self, secrets: Sequence[str], tolerance: float = DEFAULT_TOLERANCE) -> None:
        if not tolerance > 0:
            raise ValueError(f"tolerance must be > 0 seconds, got {tolerance}")
        self._keys = _keys(secrets)
        self.tolerance = tolerance

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        """Return if the push is authentic and fresh, else raise.

        Args:
            headers: the request's headers (names in any case).
            body: the exact bytes received, before any parsing.
            now: the current time, Unix seconds.

        Raises:
            SignatureError: a header is missing or malformed, the timestamp is outside
                ``now ± tolerance``, or no signature matches; ``reason`` tells which.
        """
        msg_id = _header(headers, ID_HEADER)
        stamp = _header(headers, TIMESTAMP_HEADER)
        header = _header(headers, SIGNATURE_HEADER)
        if "." in msg_id:
            raise SignatureError(Reason.MALFORMED_ID, "the webhook-id must not contain '.'")
        self._check_time(stamp, now)
        offered = _signatures(header)
        if not offered:
            raise SignatureError(Reason.NO_SIGNATURE, "the webhook-signature has no v1 signature")
        for key in self._keys:
            expected = _mac(key, msg_id, stamp, body)
            # Invariant: every comparison is constant-time, so timing reveals nothing of
            # `expected` (else a verifier becomes a signing oracle).
            if any(hmac.compare_digest(expected, sig) for sig in offered):
                return
        raise SignatureError(Reason.MISMATCH, "no signature matches a known secret")

    def _check_time(self, stamp: str, now: float) -> None:
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= _MAX_TIMESTAMP_DIGITS):
            raise SignatureError(
                Reason.MALFORMED_TIMESTAMP, "the webhook-timestamp must be integer Unix seconds"
            )
        skew = int(stamp) - now
        if skew < -self.tolerance:
            raise SignatureError(
                Reason.STALE, f"the push is {-skew:.0f} s old (tolerance {self.tolerance:g} s)"
            )
        if skew > self.tolerance:
            raise SignatureError(
                Reason.FUTURE,
                f"the push is {skew:.0f} s in the future (tolerance {self.tolerance:g} s)",
            )
