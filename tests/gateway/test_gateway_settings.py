from __future__ import annotations

import logging
import re

import pytest
from pydantic import ValidationError

from gateway.main import main
from gateway.security import keys
from gateway.settings import Settings
from tests.conftest import logging_restored
from tests.gateway.conftest import PROD_SECRET


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith("RS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RS_ENV", "dev")  # what the tests say; production is the default


def test_production_is_the_default_and_refuses_the_placeholder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RS_ENV")
    with pytest.raises(ValidationError, match="RS_SECRET_KEY is still the placeholder"):
        Settings()
    s = Settings(secret_key=PROD_SECRET)
    assert (s.env, s.allow_anonymous_read) == ("prod", False)


def test_defaults() -> None:
    s = Settings(env="dev")
    assert s.env == "dev"
    assert s.database_url == "sqlite:///./var/gateway.db"
    assert (s.mqtt_host, s.mqtt_port, s.site, s.http_port) == ("127.0.0.1", 1883, "site1", 8000)


def test_prod_refuses_placeholder_secret() -> None:
    with pytest.raises(ValidationError, match="RS_SECRET_KEY is still the placeholder"):
        Settings(env="prod")


def test_prod_accepts_real_secret() -> None:
    assert Settings(env="prod", secret_key=PROD_SECRET).env == "prod"


@pytest.mark.parametrize("secret", ["", "short", "x" * 31])
def test_prod_refuses_short_secret(secret: str) -> None:
    with pytest.raises(ValidationError, match=r"RS_SECRET_KEY is too short .* at least 32"):
        Settings(env="prod", secret_key=secret)


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        ("x" * 40, "too predictable (about 0 bits"),
        ("abababababababababababababababababab", "too predictable (about 36 bits"),
        ("0123012301230123012301230123012301230123", "too predictable (about 80 bits"),
        ("please-change-me-before-going-live-2024", "a placeholder (contains 'changeme')"),
    ],
)
def test_prod_refuses_predictable_or_placeholder_secrets(secret: str, why: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(f"RS_SECRET_KEY is {why}")):
        Settings(env="prod", secret_key=secret)


def test_prod_accepts_generated_secrets_of_exactly_32_characters() -> None:
    import secrets

    for _ in range(50):
        value = secrets.token_hex(16)  # 128 random bits, 32 hex digits
        assert Settings(env="prod", secret_key=value).secret_key == value


def test_prod_refuses_a_weak_bootstrap_key_and_a_webhook_url_without_secret() -> None:
    with pytest.raises(ValidationError, match="RS_BOOTSTRAP_API_KEY is too predictable"):
        Settings(env="prod", secret_key=PROD_SECRET, bootstrap_api_key="a" * 30)
    with pytest.raises(ValidationError, match="RS_WEBHOOK_URL needs RS_WEBHOOK_SECRET"):
        Settings(env="dev", webhook_url="http://hooks.test/x")


def test_one_key_per_purpose() -> None:
    s = Settings(env="prod", secret_key=PROD_SECRET)
    derived = {p: s.key(p) for p in keys.PURPOSES}
    assert len(set(derived.values())) == len(keys.PURPOSES) == 3
    assert all(len(k) == 64 and PROD_SECRET not in k for k in derived.values())
    # RFC 5869 HKDF-SHA256 computed independently with hmac: no salt (zeros), info, L=32
    import hashlib
    import hmac

    prk = hmac.new(b"\0" * 32, PROD_SECRET.encode(), hashlib.sha256).digest()
    okm = hmac.new(prk, b"returns-sorter/v1/returns-csrf\x01", hashlib.sha256).hexdigest()
    assert derived["returns-csrf"] == okm
    with pytest.raises(ValueError, match="unknown key purpose"):
        s.key("sessions")


def test_dev_accepts_short_secret() -> None:
    assert Settings(env="dev", secret_key="short").secret_key == "short"


@pytest.mark.parametrize("secret", ["", "short"])
def test_main_exits_2_on_short_secret_in_prod(
    secret: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RS_ENV", "prod")
    monkeypatch.setenv("RS_SECRET_KEY", secret)
    assert main(["--port", "0"]) == 2
    assert "RS_SECRET_KEY is too short" in capsys.readouterr().err


def test_main_configures_logging_and_the_teardown_undoes_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # main's handler writes to this test's captured stderr, closed after it: left on the
    # root logger, a later test's gateway threads logged "--- Logging error ---"
    monkeypatch.setenv("RS_ENV", "prod")
    monkeypatch.setenv("RS_SECRET_KEY", "short")
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    with logging_restored():
        assert main(["--port", "0"]) == 2
        (handler,) = root.handlers
        assert isinstance(handler, logging.StreamHandler) and handler not in before[0]
    assert (list(root.handlers), root.level) == before
    capsys.readouterr()


def test_reads_rs_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RS_MQTT_PORT", "1999")
    monkeypatch.setenv("RS_SITE", "lyon")
    s = Settings()
    assert (s.mqtt_port, s.site) == (1999, "lyon")


def test_site_must_be_a_topic_segment() -> None:
    with pytest.raises(ValidationError):
        Settings(site="a/b")


def test_main_exits_2_on_placeholder_secret_in_prod(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RS_ENV", "prod")
    monkeypatch.delenv("RS_SECRET_KEY", raising=False)
    assert main(["--port", "0"]) == 2
    assert "RS_SECRET_KEY" in capsys.readouterr().err


def test_policy_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:

    monkeypatch.setenv("RS_RETURN_WINDOW_DAYS", '{"default": 60, "shoes": 100}')
    assert Settings().return_window_days == {"default": 60, "shoes": 100}
    with pytest.raises(ValidationError, match=r"within 0\.\.100"):
        Settings(credit_percent_by_grade={"restock": 120})
    with pytest.raises(
        ValidationError, match=r"days must be within 0\.\.36500, got \{'x': 36501\}"
    ):
        Settings(return_window_days={"default": 30, "x": 36_501})  # 10^9 days overflowed
    assert Settings(return_window_days={"default": 36_500}).return_window_days["default"] == 36_500
    with pytest.raises(ValidationError, match="unknown time zone"):
        Settings(shop_timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="lacks"):
        Settings(stock_locations={"restock": "R"})


@pytest.mark.parametrize(
    ("name", "longest"),
    [
        ("quota_dead_letter_days", 36_500.0),
        ("quota_alarm_days", 36_500.0),
        ("idempotency_days", 36_500.0),
        ("quota_orphan_photo_hours", 876_000.0),
        ("photo_retention_days", 36_500.0),
        ("expiry_check_s", 86_400.0),
        ("webhook_backoff_s", 86_400.0),
        ("webhook_poll_s", 86_400.0),
        ("connector_backoff_s", 86_400.0),
        ("connector_poll_s", 86_400.0),
        ("notification_backoff_s", 86_400.0),
        ("notification_poll_s", 86_400.0),
        ("return_shipping_cents", 10**12),
        ("approval_threshold_cents", 10**12),
    ],
)
def test_retentions_intervals_and_amounts_are_bounded(name: str, longest: float) -> None:
    # unbounded, 1e12 days was accepted and the hourly purge's timedelta overflowed, as a
    # worker's wait did on a 1e300 s poll; an amount beyond int64 broke the sums
    assert getattr(Settings(**{name: longest}), name) == longest
    with pytest.raises(ValidationError):
        Settings(**{name: longest * 2 if longest > 10**6 else 1e12})
