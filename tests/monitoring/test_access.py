"""Who may scrape /metrics."""

import pytest
from rasa.shared.exceptions import InvalidConfigException

from lepton_components.monitoring.access import MetricsAccess

TOKEN = "scrape-token-0123456789"
BEARER = {"authorization": f"Bearer {TOKEN}"}
PRIVATE_PEERS = ["10.4.0.7", "172.17.0.1", "172.20.1.1", "192.168.1.9", "fd00::5", "::ffff:10.0.0.1"]


@pytest.mark.parametrize("ip", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_loopback_is_served_by_default(ip: str) -> None:
    assert MetricsAccess().refusal(ip, {}) is None


@pytest.mark.parametrize("ip", PRIVATE_PEERS)
def test_private_networks_are_refused_by_default(ip: str) -> None:
    """Behind an L4 load balancer or Docker's port proxy every client has a private address."""
    status, reason = MetricsAccess().refusal(ip, {})
    assert status == 403 and "LEPTON_METRICS_TOKEN" in reason and "LEPTON_METRICS_ALLOW=private" in reason


@pytest.mark.parametrize("ip", PRIVATE_PEERS + ["127.0.0.1"])
def test_private_networks_are_served_when_configured(ip: str) -> None:
    assert MetricsAccess(allow="private").refusal(ip, {}) is None


@pytest.mark.parametrize("ip", ["8.8.8.8", "2001:4860::8888", "169.254.169.254", "", "not-an-ip"])
def test_public_link_local_and_unknown_peers_are_refused_without_token(ip: str) -> None:
    for access in (MetricsAccess(), MetricsAccess(allow="private")):
        status, reason = access.refusal(ip, {})
        assert status == 403 and "LEPTON_METRICS_TOKEN" in reason


def test_a_proxied_request_gets_no_trust_from_the_proxy_address() -> None:
    assert MetricsAccess().refusal("127.0.0.1", {"x-forwarded-for": "127.0.0.1"})[0] == 403
    assert MetricsAccess(allow="private").refusal("10.0.0.2", {"x-forwarded-for": "203.0.113.9"})[0] == 403
    assert MetricsAccess(allow="private").refusal("10.0.0.2", {"x-real-ip": "10.0.0.3"})[0] == 403
    assert MetricsAccess(token=TOKEN).refusal("10.0.0.2", {"forwarded": "for=203.0.113.9", **BEARER}) is None


def test_bearer_token_from_anywhere_and_wrong_tokens_refused() -> None:
    access = MetricsAccess(token=TOKEN)
    assert access.refusal("8.8.4.4", BEARER) is None
    assert access.refusal("8.8.4.4", {})[0] == 401
    assert access.refusal("8.8.4.4", {"authorization": "Bearer wrong-token-0123456789"})[0] == 401
    # A wrong token is refused even from loopback: a misconfigured scraper should notice.
    assert access.refusal("127.0.0.1", {"authorization": "Basic dXNlcjpwYXNz"})[0] == 401


def test_an_authorization_header_that_is_not_utf8_is_a_400() -> None:
    # How Sanic hands over a header holding the bytes b"Bearer \xff": decoded with surrogateescape.
    header = b"Bearer \xff".decode("utf-8", "surrogateescape")
    status, reason = MetricsAccess(token=TOKEN).refusal("8.8.4.4", {"authorization": header})
    assert status == 400 and "UTF-8" in reason


def test_loopback_and_token_only_modes() -> None:
    assert MetricsAccess(allow="loopback").refusal("10.0.0.3", {})[0] == 403
    assert MetricsAccess(allow="loopback").refusal("127.0.0.1", {}) is None
    assert MetricsAccess(allow="token", token=TOKEN).refusal("127.0.0.1", {})[0] == 401


def test_environment_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEPTON_METRICS_ALLOW", raising=False)
    monkeypatch.delenv("LEPTON_METRICS_TOKEN", raising=False)
    assert MetricsAccess.from_env() == MetricsAccess("loopback", None)
    monkeypatch.setenv("LEPTON_METRICS_ALLOW", "Private")
    monkeypatch.setenv("LEPTON_METRICS_TOKEN", TOKEN)
    assert MetricsAccess.from_env() == MetricsAccess("private", TOKEN)
    monkeypatch.setenv("LEPTON_METRICS_TOKEN", "short")
    with pytest.raises(InvalidConfigException, match="at least 16 printable ASCII characters, got 5"):
        MetricsAccess.from_env()
    monkeypatch.delenv("LEPTON_METRICS_TOKEN")
    monkeypatch.setenv("LEPTON_METRICS_ALLOW", "everyone")
    with pytest.raises(InvalidConfigException, match="got 'everyone'"):
        MetricsAccess.from_env()
    monkeypatch.setenv("LEPTON_METRICS_ALLOW", "token")
    with pytest.raises(InvalidConfigException, match="needs LEPTON_METRICS_TOKEN"):
        MetricsAccess.from_env()
