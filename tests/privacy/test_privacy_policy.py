"""Settings: every kind masked by default, bad values refused with the key named, and no
`hash` without a long enough secret from the environment."""

import logging

import pytest
from rasa.shared.exceptions import InvalidConfigException

from lepton_components.privacy.pii_detectors import KINDS
from lepton_components.privacy.privacy_policy import DEFAULT_SECRET_ENV, HASH, KEEP, MASK, PrivacyPolicy


def test_defaults_mask_every_kind_without_needing_a_secret() -> None:
    policy = PrivacyPolicy.from_settings({}, environ={})
    assert dict(policy.kinds) == {kind: MASK for kind in KINDS}
    assert policy.hash_secret is None and policy.mask_logs and policy.phone_regions == ("US",)


def test_settings_are_read() -> None:
    policy = PrivacyPolicy.from_settings(
        {
            "pii": {"phone": "keep"},
            "slots": {"order_number": "keep"},
            "entities": {"name": "mask"},
            "phone_regions": ["gb", "DE"],
            "allow": [" Support@Lepton.example "],
            "mask_logs": False,
        },
        environ={},
    )
    assert policy.kinds["phone"] == KEEP and policy.kinds["email"] == MASK
    assert policy.slots == {"order_number": KEEP} and policy.entities == {"name": MASK}
    assert policy.phone_regions == ("GB", "DE")
    assert policy.allow == frozenset({"support@lepton.example"})
    assert policy.mask_logs is False


@pytest.mark.parametrize(
    "settings, message",
    [
        (
            {"pii": {"email": "encrypt"}},
            "`tracker_store.pii.email` must be one of ['mask', 'hash', 'keep'], got 'encrypt'",
        ),
        ({"pii": {"passport": "mask"}}, "unknown kind of personal data 'passport'"),
        ({"slots": ["email"]}, "`tracker_store.slots` must map names"),
        ({"phone_regions": ["XX"]}, "codes libphonenumber does not know: ['XX']"),
        ({"allow": "support@lepton.example"}, "`tracker_store.allow` must be a list"),
        ({"mask_logs": "yes"}, "`tracker_store.mask_logs` must be true or false"),
    ],
)
def test_bad_settings_name_the_key(settings: dict, message: str) -> None:
    with pytest.raises(InvalidConfigException, match=None) as error:
        PrivacyPolicy.from_settings(settings, environ={})
    assert message in str(error.value)


@pytest.mark.parametrize(
    "where", [{"pii": {"iban": "hash"}}, {"slots": {"email": "hash"}}, {"entities": {"name": "hash"}}]
)
def test_hash_without_a_secret_refuses_to_start(where: dict) -> None:
    with pytest.raises(InvalidConfigException) as error:
        PrivacyPolicy.from_settings(where, environ={})
    assert f"{DEFAULT_SECRET_ENV} is not set" in str(error.value)


def test_short_secret_and_custom_variable() -> None:
    with pytest.raises(InvalidConfigException, match="MY_KEY has 5 characters"):
        PrivacyPolicy.from_settings({"pii": {"email": HASH}, "hash_secret_env": "MY_KEY"}, environ={"MY_KEY": "short"})
    policy = PrivacyPolicy.from_settings(
        {"pii": {"email": HASH}, "hash_secret_env": "MY_KEY"}, environ={"MY_KEY": "k" * 16}
    )
    assert policy.hash_secret == b"k" * 16


def test_unknown_keys_warn(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        PrivacyPolicy.from_settings({"slot": {"email": "mask"}}, environ={})
    assert "['slot']" in caplog.text
