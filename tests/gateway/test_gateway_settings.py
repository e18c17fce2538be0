from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.main import main
from gateway.settings import Settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith("RS_"):
            monkeypatch.delenv(name)


def test_defaults_are_dev() -> None:
    s = Settings()
    assert s.env == "dev"
    assert s.database_url == "sqlite:///./var/gateway.db"
    assert (s.mqtt_host, s.mqtt_port, s.site, s.http_port) == ("127.0.0.1", 1883, "site1", 8000)


def test_prod_refuses_placeholder_secret() -> None:
    with pytest.raises(ValidationError, match="RS_SECRET_KEY is still the placeholder"):
        Settings(env="prod")


def test_prod_accepts_real_secret() -> None:
    assert Settings(env="prod", secret_key="x" * 40).env == "prod"


@pytest.mark.parametrize("secret", ["", "short", "x" * 31])
def test_prod_refuses_short_secret(secret: str) -> None:
    with pytest.raises(ValidationError, match=r"RS_SECRET_KEY is too short .* at least 32"):
        Settings(env="prod", secret_key=secret)


def test_prod_accepts_secret_of_exactly_32_characters() -> None:
    assert Settings(env="prod", secret_key="x" * 32).secret_key == "x" * 32


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
    with pytest.raises(ValidationError, match="unknown time zone"):
        Settings(shop_timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="lacks"):
        Settings(stock_locations={"restock": "R"})
