"""FaqAdminInput refuses weak or unset tokens before the server starts."""

import pytest
from rasa.shared.exceptions import InvalidConfigException

from lepton_components.channels.faq_admin import FaqAdminInput


@pytest.mark.parametrize("credentials", [None, {}, {"token": "short"}, {"token": "${LEPTON_ADMIN_TOKEN}"}])
def test_weak_or_missing_token_is_refused_with_the_fix(credentials) -> None:
    with pytest.raises(InvalidConfigException, match="needs a secret `token`.*LEPTON_ADMIN_TOKEN"):
        FaqAdminInput.from_credentials(credentials)


def test_strong_token_is_accepted() -> None:
    assert FaqAdminInput.from_credentials({"token": "x" * 32}).name() == "faq_admin"
