"""Gateway settings, read from ``RS_*`` environment variables.

Example: ``RS_ENV=prod RS_SECRET_KEY=... RS_DATABASE_URL=postgresql+psycopg://...``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET_KEY = "change-me"


class Settings(BaseSettings):
    """Typed gateway configuration.

    Every field can be set from the environment with the ``RS_`` prefix
    (``RS_MQTT_PORT=1884``) or passed as a keyword argument.

    Raises:
        pydantic.ValidationError: on an invalid value, or when ``secret_key`` is left at its
            placeholder default while ``env`` is not ``"dev"``.
    """

    model_config = SettingsConfigDict(env_prefix="RS_", extra="ignore")

    env: Literal["dev", "prod"] = "dev"
    database_url: str = "sqlite:///./var/gateway.db"
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(default=1883, ge=1, le=65535)
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    mqtt_tls_ca: str | None = None
    mqtt_client_id: str | None = Field(
        default=None, description="default gateway-{site}; unique per replica"
    )
    mqtt_share_group: str | None = Field(
        default=None, description="MQTT 5 shared-subscription group, e.g. 'gateways'"
    )
    site: str = Field(default="site1", min_length=1, max_length=64, pattern=r"^[^/+#\s]+$")
    secret_key: str = DEFAULT_SECRET_KEY
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> Settings:
        if self.env != "dev" and self.secret_key == DEFAULT_SECRET_KEY:
            raise ValueError(
                f"RS_SECRET_KEY is still the placeholder {DEFAULT_SECRET_KEY!r} with "
                f"RS_ENV={self.env!r}; set RS_SECRET_KEY to a long random value "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        return self
