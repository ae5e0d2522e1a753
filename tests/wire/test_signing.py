"""Signed pushes: Conveyor's signer and verifier against the independent ``standardwebhooks``
library (both ways), secret rotation, and every way a push is refused."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from conveyor.errors import ConveyorError, SignatureError
from conveyor.wire.signing import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Reason,
    Signer,
    Verifier,
    generate_secret,
    new_message_id,
    parse_secret,
    split_secrets,
)

OLD = "whsec_" + base64.b64encode(bytes(range(32))).decode()
NEW = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
OTHER = "whsec_" + base64.b64encode(b"x" * 24).decode()
BODY = b'{"subscription":"billing","events":[{"id":"0190","payload":{"amount":9.5}}]}'
MSG_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
T0 = 1_700_000_000


def refusal(verifier: Verifier, headers: dict[str, str], body: bytes, now: float) -> Reason:
    with pytest.raises(SignatureError) as caught:
        verifier.verify(headers, body, now)
    return Reason(caught.value.reason)


# -- interoperability with the standardwebhooks library ------------------------------------


@pytest.mark.parametrize("secret", [OLD, NEW])
def test_the_library_verifies_a_push_signed_with_old_and_new_secrets(secret: str) -> None:
    # Given a push signed while rotating (both secrets listed), stamped now
    headers = Signer([OLD, NEW]).headers(MSG_ID, BODY, int(time.time()))
    # When a receiver using the library knows either secret
    verified = Webhook(secret).verify(BODY, headers, json_parse=False)
    # Then it accepts the push
    assert verified is None


def test_the_library_refuses_a_conveyor_push_whose_body_was_altered() -> None:
    # Given a push signed by Conveyor
    headers = Signer([OLD]).headers(MSG_ID, BODY, int(time.time()))
    # When its body is altered, Then the library refuses it
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(OLD).verify(BODY.replace(b"9.5", b"95"), headers, json_parse=False)


def test_the_verifier_accepts_a_push_signed_by_the_library() -> None:
    # Given a push signed by the library, with its own encoding of id, timestamp and body
    sent = datetime.now(tz=UTC)
    signature = Webhook(NEW).sign(MSG_ID, sent, BODY.decode())
    headers = {
        ID_HEADER: MSG_ID,
        TIMESTAMP_HEADER: str(int(sent.timestamp())),
        SIGNATURE_HEADER: signature,
    }
    # When Conveyor's verifier checks it, Then it passes
    Verifier([NEW]).verify(headers, BODY, sent.timestamp())
    # And it is exactly the signature Conveyor computes
    assert Signer([NEW]).headers(MSG_ID, BODY, int(sent.timestamp())) == headers


def test_a_generated_secret_is_accepted_by_the_library() -> None:
    # Given a new secret
    secret = generate_secret()
    # When Conveyor signs with it, Then the library verifies with it
    headers = Signer([secret]).headers(new_message_id(), BODY, int(time.time()))
    assert Webhook(secret).verify(BODY, headers, json_parse=False) is None


# -- rotation ------------------------------------------------------------------------------


@pytest.mark.parametrize("known", [[OLD], [NEW], [NEW, OLD]])
def test_while_rotating_a_worker_knowing_either_secret_accepts(known: list[str]) -> None:
    # Given the platform lists the old and the new secret
    headers = Signer([OLD, NEW]).headers(MSG_ID, BODY, T0)
    # When a worker knows either of them, Then the push passes
    Verifier(known).verify(headers, BODY, T0)


def test_while_rotating_a_worker_knowing_neither_secret_refuses() -> None:
    headers = Signer([OLD, NEW]).headers(MSG_ID, BODY, T0)
    assert refusal(Verifier([OTHER]), headers, BODY, T0) is Reason.MISMATCH


def test_a_worker_listing_both_secrets_accepts_a_platform_signing_with_either() -> None:
    verifier = Verifier([OLD, NEW])
    for secret in (OLD, NEW):
        verifier.verify(Signer([secret]).headers(MSG_ID, BODY, T0), BODY, T0)


def test_the_signature_header_holds_one_signature_per_distinct_secret_in_order() -> None:
    # Given a signer listing two secrets, one of them twice
    headers = Signer([OLD, NEW, OLD]).headers(MSG_ID, BODY, T0)
    # Then it carries two v1 signatures, the old one's first
    signatures = headers[SIGNATURE_HEADER].split(" ")
    assert [s.split(",")[0] for s in signatures] == ["v1", "v1"]
    assert signatures[0] == Signer([OLD]).headers(MSG_ID, BODY, T0)[SIGNATURE_HEADER]
    assert signatures[1] == Signer([NEW]).headers(MSG_ID, BODY, T0)[SIGNATURE_HEADER]


# -- tampering -----------------------------------------------------------------------------


@pytest.fixture
def signed() -> dict[str, str]:
    return Signer([OLD]).headers(MSG_ID, BODY, T0)


def test_a_tampered_body_is_refused(signed: dict[str, str]) -> None:
    tampered = BODY.replace(b'"amount":9.5', b'"amount":0.5')
    assert refusal(Verifier([OLD]), signed, tampered, T0) is Reason.MISMATCH


def test_a_tampered_id_is_refused(signed: dict[str, str]) -> None:
    headers = {**signed, ID_HEADER: "msg_someone_else"}
    assert refusal(Verifier([OLD]), headers, BODY, T0) is Reason.MISMATCH


def test_a_tampered_timestamp_is_refused_even_within_tolerance(signed: dict[str, str]) -> None:
    headers = {**signed, TIMESTAMP_HEADER: str(T0 + 1)}
    assert refusal(Verifier([OLD]), headers, BODY, T0) is Reason.MISMATCH


def test_a_signature_from_an_unknown_secret_is_refused() -> None:
    headers = Signer([OTHER]).headers(MSG_ID, BODY, T0)
    assert refusal(Verifier([OLD, NEW]), headers, BODY, T0) is Reason.MISMATCH


ID_CHARACTERS = st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=".")


@given(body=st.binary(max_size=512), msg_id=st.text(ID_CHARACTERS, min_size=1))
def test_any_signed_push_verifies_and_any_flipped_byte_is_refused(body: bytes, msg_id: str) -> None:
    # Given any body and id, signed
    headers = Signer([OLD]).headers(msg_id, body, T0)
    verifier = Verifier([OLD])
    # Then it verifies
    verifier.verify(headers, body, T0)
    # And when one bit of the body flips, Then it is refused
    if body:
        flipped = bytes([body[0] ^ 1]) + body[1:]
        assert refusal(verifier, headers, flipped, T0) is Reason.MISMATCH


# -- freshness -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "reason"),
    [(T0 + 300.5, Reason.STALE), (T0 + 86_400, Reason.STALE), (T0 - 300.5, Reason.FUTURE)],
)
def test_a_timestamp_outside_the_tolerance_is_refused(
    signed: dict[str, str], now: float, reason: Reason
) -> None:
    assert refusal(Verifier([OLD], tolerance=300), signed, BODY, now) is reason


@pytest.mark.parametrize("now", [T0 - 300, T0, T0 + 300])
def test_a_timestamp_within_the_tolerance_is_accepted(signed: dict[str, str], now: float) -> None:
    Verifier([OLD], tolerance=300).verify(signed, BODY, now)


def test_the_tolerance_is_the_verifiers_to_choose(signed: dict[str, str]) -> None:
    assert refusal(Verifier([OLD], tolerance=5), signed, BODY, T0 + 6) is Reason.STALE
    Verifier([OLD], tolerance=10).verify(signed, BODY, T0 + 6)


# The fifth is 1700 in Arabic-Indic digits, which str.isdigit() and int() accept.
@pytest.mark.parametrize(
    "stamp", ["", "abc", "1700000000.5", "-1700000000", "\u0661\u0667\u0660\u0660", "9" * 13]
)
def test_a_timestamp_that_is_not_integer_seconds_is_refused(
    signed: dict[str, str], stamp: str
) -> None:
    reason = refusal(Verifier([OLD]), {**signed, TIMESTAMP_HEADER: stamp}, BODY, T0)
    expected = Reason.MISSING_HEADER if stamp == "" else Reason.MALFORMED_TIMESTAMP
    assert reason is expected


# -- headers -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER])
def test_a_missing_header_is_refused_and_named(signed: dict[str, str], name: str) -> None:
    # Given a push lacking one header
    del signed[name]
    # When it is verified, Then it is refused as missing, naming the header
    with pytest.raises(SignatureError, match=name) as caught:
        Verifier([OLD]).verify(signed, BODY, T0)
    assert caught.value.reason is Reason.MISSING_HEADER


def test_a_blank_header_counts_as_missing(signed: dict[str, str]) -> None:
    headers = {**signed, SIGNATURE_HEADER: "  "}
    assert refusal(Verifier([OLD]), headers, BODY, T0) is Reason.MISSING_HEADER


def test_an_unsigned_push_is_refused() -> None:
    assert refusal(Verifier([OLD]), {}, BODY, T0) is Reason.MISSING_HEADER


def test_header_names_are_case_insensitive(signed: dict[str, str]) -> None:
    # Given the headers as a plain dict in title case, and as aiohttp's case-insensitive map
    titled = {name.title(): value for name, value in signed.items()}
    multi = CIMultiDict({name.upper(): value for name, value in signed.items()})
    # Then both verify
    Verifier([OLD]).verify(titled, BODY, T0)
    Verifier([OLD]).verify(multi, BODY, T0)


@pytest.mark.parametrize(
    "header", ["v1a,AAAA", "garbage", "v1", "v1,", "v1,AAAA", "v1,*" + "A" * 43 + "=", "v2,AAAA"]
)
def test_a_signature_header_without_a_readable_v1_signature_is_refused(
    signed: dict[str, str], header: str
) -> None:
    headers = {**signed, SIGNATURE_HEADER: header}
    assert refusal(Verifier([OLD]), headers, BODY, T0) is Reason.NO_SIGNATURE


def test_unreadable_signatures_are_skipped_for_a_good_one(signed: dict[str, str]) -> None:
    # Given a header with an asymmetric signature and garbage before the good one
    headers = {**signed, SIGNATURE_HEADER: f"v1a,AAAA garbage  {signed[SIGNATURE_HEADER]}"}
    # Then the good one is found
    Verifier([OLD]).verify(headers, BODY, T0)


def test_an_id_with_a_dot_is_refused_by_signer_and_verifier(signed: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="webhook-id"):
        Signer([OLD]).headers("msg.1", BODY, T0)
    headers = {**signed, ID_HEADER: "msg.1"}
    assert refusal(Verifier([OLD]), headers, BODY, T0) is Reason.MALFORMED_ID


@pytest.mark.parametrize("msg_id", ["", "msg 1", " msg", "msg\n", "msg_é"])
def test_the_signer_refuses_an_id_unfit_for_a_header(msg_id: str) -> None:
    with pytest.raises(ValueError, match="webhook-id"):
        Signer([OLD]).headers(msg_id, BODY, T0)


def test_the_signer_refuses_a_negative_timestamp() -> None:
    with pytest.raises(ValueError, match="timestamp"):
        Signer([OLD]).headers(MSG_ID, BODY, -1)


def test_a_signature_error_is_a_conveyor_error_answered_401(signed: dict[str, str]) -> None:
    with pytest.raises(SignatureError) as caught:
        Verifier([NEW]).verify(signed, BODY, T0)
    error = caught.value
    assert isinstance(error, ConveyorError)
    assert (error.status, error.code, error.reason) == (401, "invalid_signature", "mismatch")
    assert signed[SIGNATURE_HEADER].split(",")[1] not in error.message


# -- secrets -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        (base64.b64encode(b"k" * 32).decode(), "must start with 'whsec_'"),
        ("whsec_", "24 to 64 bytes"),
        ("whsec_not*base64!", "base64"),
        ("whsec_*" + base64.b64encode(b"k" * 32).decode(), "base64"),
        ("whsec_" + base64.b64encode(b"k" * 23).decode(), "this one holds 23"),
        ("whsec_" + base64.b64encode(b"k" * 65).decode(), "this one holds 65"),
    ],
)
def test_a_malformed_secret_is_refused_with_a_clear_message(secret: str, problem: str) -> None:
    # When a malformed secret is parsed, or given to a signer or verifier
    for attempt in (parse_secret, lambda s: Signer([s]), lambda s: Verifier([s])):
        with pytest.raises(ValueError, match="signing secret") as caught:
            attempt(secret)
        # Then the message says what is wrong, and never quotes the secret
        assert problem in str(caught.value)
        encoded = secret.removeprefix("whsec_")
        assert not encoded or encoded not in str(caught.value)


def test_a_secret_may_leave_off_its_padding_and_surrounding_space() -> None:
    key = bytes(range(25))
    padded = "whsec_" + base64.b64encode(key).decode()
    assert padded.endswith("=")
    assert parse_secret(padded.rstrip("=")) == key
    assert parse_secret(f"  {padded}\n") == key


def test_a_generated_secret_is_new_each_time_and_32_bytes() -> None:
    first, second = generate_secret(), generate_secret()
    assert first != second
    assert first.startswith("whsec_")
    assert len(parse_secret(first)) == 32


def test_a_signer_or_verifier_needs_a_sequence_of_at_least_one_secret() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Signer([])
    with pytest.raises(TypeError, match="one string"):
        Verifier(OLD)
    with pytest.raises(ValueError, match="#2"):
        Signer([OLD, "whsec_short"])


@pytest.mark.parametrize("tolerance", [0, -1, float("nan")])
def test_a_verifier_needs_a_positive_tolerance(tolerance: float) -> None:
    with pytest.raises(ValueError, match="tolerance"):
        Verifier([OLD], tolerance=tolerance)


@pytest.mark.parametrize("text", [f"{OLD},{NEW}", f"{OLD} {NEW}", f" {OLD},\n {NEW} ,"])
def test_a_list_of_secrets_splits_on_commas_and_whitespace(text: str) -> None:
    assert split_secrets(text) == [OLD, NEW]


def test_a_list_of_secrets_names_the_malformed_one_and_refuses_none() -> None:
    with pytest.raises(ValueError, match="#2"):
        split_secrets(f"{OLD},whsec_short")
    with pytest.raises(ValueError, match="no signing secret"):
        split_secrets(" , ")


def test_message_ids_are_unique_and_dot_free() -> None:
    ids = {new_message_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.startswith("msg_") and "." not in i for i in ids)
