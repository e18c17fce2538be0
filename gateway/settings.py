"""Gateway settings, read from ``RS_*`` environment variables.

Production is the default: without ``RS_ENV`` the gateway runs as ``prod`` and refuses to
start without a strong ``RS_SECRET_KEY``; the demo, the simulator and the tests say
``RS_ENV=dev`` explicitly. Example: ``RS_SECRET_KEY=... RS_DATABASE_URL=postgresql+psycopg://...``.
"""

from __future__ import annotations

from datetime import time
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.security import keys

DEFAULT_SECRET_KEY = "change-me"  # the placeholder production refuses  # nosec B105
MIN_SECRET_KEY_LENGTH = keys.MIN_SECRET_LENGTH
DEFAULT_SITE = "site1"
#: the longest a retention setting may be, days (100 years: a bound, not a policy)
MAX_RETENTION_DAYS = 36_500.0
#: the longest poll, check or first-retry interval, s (a day; a bound: 1e300 s overflowed
#: the worker thread's wait)
MAX_INTERVAL_S = 86_400.0
#: the longest return window, days (100 years: a bound, not a policy; a day a client may
#: send, up to :data:`gateway.schemas.LATEST_DATE`, plus this stays in the calendar:
#: 10^9 days overflowed the window's arithmetic)
RETURN_WINDOW_DAYS_MAX = 36_500
#: the largest amount a setting may name, minor units (10^12: under any int64 sum)
MAX_SETTING_CENTS = 10**12
"""The site of a gateway configured with none (and of the data from before sites)."""
SITE_ID_PATTERN = r"^[^/+#\s]+$"
"""A site id: no ``/``, ``+``, ``#`` nor white space (an MQTT topic segment)."""
"""Shortest ``RS_SECRET_KEY`` accepted when ``RS_ENV`` is not ``"dev"``."""
Resolution = Literal["refund", "store_credit", "exchange"]
RefusalDestination = Literal["return_to_vendor", "scrap", "return_to_customer"]
#: where goods refused credit may go (the lead chooses): vendor, scrap, back to the customer
REFUSAL_DESTINATIONS: tuple[str, ...] = get_args(RefusalDestination)
NotificationKind = Literal["return_authorised", "return_received", "refund_issued"]
NOTIFICATION_KINDS: tuple[NotificationKind, ...] = (
    "return_authorised",
    "return_received",
    "refund_issued",
)


def _default_resolutions() -> dict[str, list[Resolution]]:
    return {
        "default": ["refund", "store_credit", "exchange"],
        "electronics": ["refund", "store_credit"],
    }


#: ``gc.set_threshold`` of the gateway process (:func:`gateway.main.tune_collector`). The
#: interpreter's default (700, 10, 10) collects after every 700 net allocations, and a
#: batch of credited parcels allocates a few hundred ORM objects and rows per parcel:
#: ``make bench`` (bench_gateway, PostgreSQL, batches of 500) measured 0.43 ms of every
#: parcel's 1.35 ms spent in the collector with the default, 0.06 ms of 0.84 with these
#: (and the start-up heap frozen). Young collections then scan at most ~10,000 objects
#: (about a millisecond), so no request waits long for one.
GC_THRESHOLD = (10_000, 10, 10)


class Settings(BaseSettings):
    """Typed gateway configuration.

    Every field can be set from the environment with the ``RS_`` prefix
    (``RS_MQTT_PORT=1884``) or passed as a keyword argument.

    Raises:
        pydantic.ValidationError: on an invalid value, or, while ``env`` is not ``"dev"``,
            when ``secret_key`` (or ``bootstrap_api_key``, ``webhook_secret``) is the
            placeholder, shorter than :data:`MIN_SECRET_KEY_LENGTH` characters or too
            predictable (:func:`gateway.security.keys.weakness`).
    """

    model_config = SettingsConfigDict(env_prefix="RS_", extra="ignore")

    env: Literal["dev", "prod"] = Field(
        default="prod", description="prod (the default) or dev (demo, simulator, tests)"
    )
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
    mqtt_batch_max: int = Field(
        default=500,
        ge=1,
        le=1000,
        description="Parcel events ingested per transaction, at most (keep the broker's "
        "max_inflight_messages above it)",
    )
    mqtt_batch_wait_ms: float = Field(
        default=10.0, ge=0, le=1000, description="How long a batch waits for more events, ms"
    )
    site: str = Field(
        default=DEFAULT_SITE,
        min_length=1,
        max_length=64,
        pattern=SITE_ID_PATTERN,
        description="The default site (the first of ``sites``); alone, the one site served",
    )
    sites: list[Annotated[str, Field(min_length=1, max_length=64, pattern=SITE_ID_PATTERN)]] = (
        Field(
            default_factory=list,
            max_length=100,
            description="Every site this gateway serves (JSON list), the first the default; "
            "empty: just ``site``",
        )
    )
    site_addresses: dict[str, str] = Field(
        default_factory=dict,
        description="Return address of each site's receiving dock (lines separated by \\n), "
        "shown on the return form and printed on labels; a site without one: return_address",
    )
    mqtt_announce_poll_s: float = Field(
        default=0.1,
        gt=0,
        le=60,
        description="s between two looks of the bridge at the announcement outbox",
    )
    secret_key: str = DEFAULT_SECRET_KEY
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    gc_threshold: tuple[
        Annotated[int, Field(ge=1, le=10_000_000)],
        Annotated[int, Field(ge=1, le=1000)],
        Annotated[int, Field(ge=1, le=1000)],
    ] = Field(
        default=GC_THRESHOLD,
        description="gc.set_threshold of the gateway process after start (JSON, e.g. "
        "[10000, 10, 10]); the start-up heap is frozen first",
    )

    # -- access ------------------------------------------------------------------------------
    bootstrap_api_key: str | None = Field(
        default=None,
        min_length=24,
        description="When set, an admin API key with this value is ensured at start "
        "(stored hashed). The simulator uses it; in production create keys instead.",
    )
    anonymous_read: bool | None = Field(
        default=None,
        description="Allow unauthenticated GETs (status page, lists). Default: True in dev, "
        "False in prod.",
    )
    trusted_proxies: str = Field(
        default="",
        max_length=2000,
        description="Comma-separated addresses or networks of the TLS-terminating proxies "
        "whose X-Forwarded-For / X-Forwarded-Proto are believed ('*': any); empty: none",
    )
    auth_rate_limit_ip: str = Field(
        default="30/minute", description="Failed credential checks allowed per client address"
    )
    auth_rate_limit_user: str = Field(
        default="10/5 minutes",
        description="Failed credential checks allowed per user name, from addresses where "
        "that user has not signed in successfully (so an attacker cannot lock the owner out)",
    )
    auth_hash_concurrency: int = Field(
        default=2, ge=1, le=64, description="Password hashes (Argon2) computed at once"
    )
    auth_hash_queue: int = Field(
        default=32, ge=0, le=10_000, description="Password checks waiting beyond that: 503"
    )

    # -- shifts (issue 16: the shift report) ------------------------------------------------
    shifts: list[str] = Field(
        default_factory=lambda: ["06:00-14:00", "14:00-22:00", "22:00-06:00"],
        min_length=1,
        max_length=8,
        description="Shifts as HH:MM-HH:MM in the shop's time zone (an end at or before "
        'the start ends the next day), e.g. RS_SHIFTS=\'["06:00-18:00","18:00-06:00"]\'',
    )
    station_rate_per_hour: int = Field(
        default=1800, ge=1, le=100_000, description="Parcels per hour a station is rated for"
    )

    # -- return policies -------------------------------------------------------------------
    shop_timezone: str = Field(default="UTC", description="IANA zone of the shop's calendar")
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    require_order: bool = Field(
        default=False,
        description="Refuse RMAs whose order is unknown. When False an RMA for an unknown "
        "order is taken on the shop's word (no window or quantity check).",
    )
    return_window_days: dict[str, int] = Field(
        default_factory=lambda: {"default": 30, "electronics": 14, "perishable": 0},
        description="Return window in days from delivery, per category ('default' else); "
        f"0..{RETURN_WINDOW_DAYS_MAX}",
    )
    restocking_fee_percent: dict[str, float] = Field(
        default_factory=lambda: {"default": 0.0, "electronics": 15.0},
        description="Restocking fee in percent of the paid price, per category, charged "
        "only when the reason is not the merchant's fault",
    )
    credit_percent_by_grade: dict[str, float] = Field(
        default_factory=lambda: {"restock": 100.0, "refurbish": 80.0, "recycle": 50.0},
        description="Share of the paid price credited by grade (disposition) when the "
        "reason is not the merchant's fault; merchant-fault reasons always get 100",
    )
    recovery_percent_by_grade: dict[str, float] = Field(
        default_factory=lambda: {
            "restock": 100.0,
            "refurbish": 60.0,
            "recycle": 5.0,
            "return_to_vendor": 50.0,
            "scrap": 0.0,
            "return_to_customer": 0.0,
        },
        description="Value recovered by disposition (a grade, or where refused goods go), "
        "in percent of the paid price",
    )
    recovery_percent_by_category: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="Per category, dispositions whose recovered value differs from "
        'recovery_percent_by_grade, e.g. {"electronics": {"refurbish": 75}}',
    )
    refusal_locations: dict[str, str] = Field(
        default_factory=lambda: {
            "return_to_vendor": "RTV",
            "scrap": "SCRAP",
            "return_to_customer": "CUSTOMER",
        },
        description="Stock location of refused goods by the lead's choice",
    )
    refusal_default: RefusalDestination = Field(
        default="return_to_customer",
        description="Where refused goods go when the lead's decision names no place",
    )
    stock_locations: dict[str, str] = Field(
        default_factory=lambda: {
            "restock": "RESTOCK",
            "refurbish": "REFURBISH",
            "recycle": "RECYCLE",
        },
        description="Stock location of each disposition",
    )
    authorization_valid_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        description="An RMA requested or authorised but not shipped nor received within "
        "this many days (shop calendar) expires",
    )
    expiry_check_s: float = Field(
        default=300.0, gt=0, le=MAX_INTERVAL_S, description="How often to expire"
    )

    # -- quotas of untrusted input, per station (gateway/services/quotas.py) ---------------
    quota_dead_letters: int = Field(default=1000, ge=1, le=10**7, description="Dead letters")
    quota_dead_letter_bytes: int = Field(
        default=16 * 1024 * 1024, ge=0, le=2**40, description="Dead letter bytes (0: any)"
    )
    quota_dead_letter_days: float = Field(
        default=30.0, gt=0, le=MAX_RETENTION_DAYS, description="Dead letters kept"
    )
    quota_open_alarms: int = Field(
        default=200, ge=1, le=10**6, description="One-off alarms not yet acknowledged"
    )
    quota_alarm_days: float = Field(
        default=90.0, gt=0, le=MAX_RETENTION_DAYS, description="Settled alarms kept"
    )
    idempotency_days: float = Field(
        default=30.0,
        gt=0,
        le=MAX_RETENTION_DAYS,
        description="Idempotency keys (and the return form's twin records) kept",
    )
    quota_orphan_photos: int = Field(
        default=200, ge=1, le=10**6, description="Photos no event has named yet"
    )
    quota_orphan_photo_bytes: int = Field(
        default=200 * 1024 * 1024, ge=0, le=2**40, description="Orphan photo bytes (0: any)"
    )
    quota_orphan_photo_hours: float = Field(
        default=24.0,
        gt=0,
        le=MAX_RETENTION_DAYS * 24,
        description="An orphan photo is deleted after this",
    )
    in_transit_overdue_days: int = Field(
        default=7,
        ge=1,
        le=365,
        description="An RMA in transit (shipped, not received) longer than this many days "
        "is overdue on the status page",
    )
    in_transit_expiry_days: int = Field(
        default=60,
        ge=1,
        le=3650,
        description="An RMA in transit longer than this many days (shop calendar) expires",
    )
    tracking_secrets: dict[str, str] = Field(
        default_factory=dict,
        max_length=32,
        description="Carrier name -> the secret it signs tracking webhooks with "
        '(POST /api/v1/tracking/events, HMAC-SHA256); JSON, e.g. {"UPS": "..."}',
    )
    shipping_refund: Literal["never", "merchant_fault", "always"] = Field(
        default="merchant_fault",
        description="When the returned units' share of the shipping the customer paid is "
        "refunded: never, only for merchant-fault reasons, or always",
    )
    return_shipping_cents: int = Field(
        default=495,
        ge=0,
        le=MAX_SETTING_CENTS,
        description="Return shipping cost per received RMA, minor units",
    )
    return_address: str = Field(
        default="Returns Centre\nDock 4\n12345 Example City",
        max_length=500,
        description="Return address printed on labels (lines separated by \\n)",
    )

    # -- the public return form (/returns) --------------------------------------------------
    shop_name: str = Field(default="Example Shop", min_length=1, max_length=100)
    shop_address: str = Field(
        default="1 Example Street\n12345 Example City",
        max_length=500,
        description="Shop address shown on the return form (lines separated by \\n)",
    )
    shop_logo_path: str | None = Field(
        default=None, description="PNG, JPEG or SVG file shown as the shop's logo on the form"
    )
    default_language: Literal["en", "fr"] = Field(
        default="en", description="Form language when the browser asks for none we have"
    )
    note_required_reasons: list[str] = Field(
        default_factory=lambda: ["defective", "not_as_described", "other"],
        description="Reason codes for which the customer must write a note",
    )
    resolutions_by_category: dict[str, list[Resolution]] = Field(
        default_factory=_default_resolutions,
        description="Resolutions a customer may ask for, per category ('default' else)",
    )
    approval_threshold_cents: int | None = Field(
        default=50_000,
        ge=0,
        le=MAX_SETTING_CENTS,
        description="A form return worth more than this (paid, minor units) waits for a "
        "lead's approval instead of being authorised at once; None: never",
    )
    form_rate_limit_ip: str = Field(
        default="20/10 minutes", description="Order look-ups allowed per client IP"
    )
    form_rate_limit_order: str = Field(
        default="10/hour", description="Order look-ups allowed per order number"
    )
    rate_limit_storage: str = Field(
        default="memory://",
        description="Storage of the form's rate limits (a `limits` URI, e.g. redis://...)",
    )

    # -- webhooks --------------------------------------------------------------------------
    photo_dir: Path = Field(default=Path("var/photos"), description="Parcel photo JPEGs")
    photo_retention_days: float | None = Field(
        default=365.0,
        gt=0,
        le=MAX_RETENTION_DAYS,
        description="Photos older than this are deleted (None: kept)",
    )
    webhook_url: str | None = Field(
        default=None, description="An endpoint ensured at start (named 'default')"
    )
    webhook_secret: str | None = Field(
        default=None,
        description="The signing secret of RS_WEBHOOK_URL's endpoint (required with it); a "
        "new value rotates it, the old one still signing during webhook_rotation_overlap_s",
    )
    webhook_rotation_overlap_s: float = Field(
        default=86_400.0, ge=0, le=30 * 86_400, description="Old secret kept signing after rotation"
    )
    webhook_max_attempts: int = Field(default=6, ge=1, le=50)
    webhook_backoff_s: float = Field(
        default=2.0, gt=0, le=MAX_INTERVAL_S, description="First retry delay"
    )
    webhook_poll_s: float = Field(default=1.0, gt=0, le=MAX_INTERVAL_S)
    webhook_concurrency: int = Field(
        default=8,
        ge=1,
        le=64,
        description="Webhook POSTs of one delivery round in flight at once (a slow endpoint "
        "holds one of them, not the whole round)",
    )
    deliveries_max_defer_s: float = Field(
        default=5.0,
        ge=0,
        le=60,
        description="While the ingest is behind (an event waits over 0.5 s for its commit), "
        "webhook, shop-connector and e-mail rounds wait for it, at most this long between "
        "two rounds (0: they never wait)",
    )

    # -- shop connectors (gateway.connectors) ----------------------------------------------
    connectors: list[Literal["shopify", "woocommerce"]] = Field(
        default_factory=list,
        description="Shop back-ends that get each refund credit and stock movement",
    )
    shopify_shop: str | None = Field(
        default=None, max_length=255, description="The shop, e.g. 'my-shop.myshopify.com'"
    )
    shopify_admin_url: str | None = Field(
        default=None,
        max_length=500,
        description="Base URL of the Admin API instead of https://<shop> (a proxy)",
    )
    shopify_access_token: SecretStr | None = Field(default=None, description="never logged")
    shopify_api_version: str = Field(default="2026-04", pattern=r"^\d{4}-\d{2}$")
    shopify_locations: dict[str, str] = Field(
        default_factory=dict,
        description="Shopify location GID of each of our stock locations (others not pushed)",
    )
    woocommerce_url: str | None = Field(default=None, max_length=500)
    woocommerce_consumer_key: SecretStr | None = Field(default=None, description="never logged")
    woocommerce_consumer_secret: SecretStr | None = Field(default=None, description="never logged")
    woocommerce_stock_locations: list[str] = Field(
        default_factory=lambda: ["RESTOCK"],
        description="Our stock locations counted in WooCommerce's stock_quantity",
    )
    woocommerce_api_refund: bool = Field(
        default=True, description="Refunds also go back through the payment gateway"
    )
    connector_max_attempts: int = Field(default=8, ge=1, le=50)
    connector_backoff_s: float = Field(
        default=30.0, gt=0, le=MAX_INTERVAL_S, description="First retry delay"
    )
    connector_poll_s: float = Field(default=2.0, gt=0, le=MAX_INTERVAL_S)
    connector_timeout_s: float = Field(default=20.0, gt=0, le=300)

    # -- customer e-mails (gateway.services.notifications) ----------------------------------
    smtp_host: str | None = Field(
        default=None, description="SMTP server of customer e-mails; unset: none are written"
    )
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["starttls", "ssl", "none"] = Field(
        default="starttls",
        description="starttls (submission, 587), ssl (implicit TLS, 465) or none (a local "
        "relay only)",
    )
    smtp_username: str | None = Field(default=None, max_length=255)
    smtp_password: SecretStr | None = Field(default=None, description="never logged")
    smtp_from: str = Field(
        default="Example Shop <returns@example.com>",
        max_length=255,
        description="From header of customer e-mails (name and address)",
    )
    smtp_timeout_s: float = Field(default=30.0, gt=0, le=300)
    notification_kinds: list[NotificationKind] = Field(
        default_factory=lambda: list(NOTIFICATION_KINDS),
        description="Which customer e-mails are sent (a shop whose own system already "
        "mails refunds leaves refund_issued out)",
    )
    notification_max_attempts: int = Field(default=8, ge=1, le=50)
    notification_backoff_s: float = Field(
        default=60.0, gt=0, le=MAX_INTERVAL_S, description="First retry delay"
    )
    notification_poll_s: float = Field(default=5.0, gt=0, le=MAX_INTERVAL_S)

    @field_validator("smtp_from")
    @classmethod
    def _from_address(cls, v: str) -> str:
        _name, address = parseaddr(v)
        if "@" not in address or any(ch in v for ch in "\r\n"):
            raise ValueError(f"smtp_from {v!r} is not an address such as 'Shop <a@b.example>'")
        return v

    @model_validator(mode="after")
    def _policies_in_range(self) -> Settings:
        for name in (
            "restocking_fee_percent",
            "credit_percent_by_grade",
            "recovery_percent_by_grade",
        ):
            table: dict[str, float] = getattr(self, name)
            bad = {k: v for k, v in table.items() if not 0 <= v <= 100}
            if bad:
                raise ValueError(f"{name}: percentages must be within 0..100, got {bad}")
        for category, table in self.recovery_percent_by_category.items():
            bad = {k: v for k, v in table.items() if not 0 <= v <= 100}
            if bad:
                raise ValueError(
                    f"recovery_percent_by_category[{category!r}]: percentages must be within "
                    f"0..100, got {bad}"
                )
        bad_days = {
            k: v for k, v in self.return_window_days.items() if not 0 <= v <= RETURN_WINDOW_DAYS_MAX
        }
        if bad_days:
            raise ValueError(
                f"return_window_days: days must be within 0..{RETURN_WINDOW_DAYS_MAX}, "
                f"got {bad_days}"
            )
        missing = {"restock", "refurbish", "recycle"} - set(self.stock_locations)
        if missing:
            raise ValueError(f"stock_locations lacks {sorted(missing)}")
        missing = set(REFUSAL_DESTINATIONS) - set(self.refusal_locations)
        if missing:
            raise ValueError(f"refusal_locations lacks {sorted(missing)}")
        return self

    @field_validator("shifts")
    @classmethod
    def _shifts_parse(cls, v: list[str]) -> list[str]:
        for text in v:
            start, sep, end = text.partition("-")
            try:
                if not sep:
                    raise ValueError(text)
                time.fromisoformat(start)
                time.fromisoformat(end)
            except ValueError:
                raise ValueError(f"shift {text[:32]!r} is not HH:MM-HH:MM") from None
            if len(start) != 5 or len(end) != 5 or start == end:
                raise ValueError(f"shift {text[:32]!r} is not HH:MM-HH:MM (start != end)")
        return v

    @field_validator("shop_timezone")
    @classmethod
    def _zone_exists(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @property
    def zone(self) -> ZoneInfo:
        """The shop's time zone."""
        return ZoneInfo(self.shop_timezone)

    @property
    def allow_anonymous_read(self) -> bool:
        """Whether unauthenticated GETs are allowed (see ``anonymous_read``)."""
        return self.env == "dev" if self.anonymous_read is None else self.anonymous_read

    @model_validator(mode="after")
    def _sites_listed(self) -> Settings:
        if not self.sites:
            self.sites = [self.site]
        if len(set(self.sites)) != len(self.sites):
            raise ValueError(f"RS_SITES lists a site twice: {self.sites}")
        if "site" not in self.model_fields_set:
            self.site = self.sites[0]
        elif self.site not in self.sites:
            raise ValueError(f"RS_SITE {self.site!r} is not one of RS_SITES {self.sites}")
        elif self.site != self.sites[0]:  # the default site is the first one
            self.sites = [self.site, *(s for s in self.sites if s != self.site)]
        unknown = sorted(set(self.site_addresses) - set(self.sites))
        if unknown:
            raise ValueError(f"RS_SITE_ADDRESSES names sites not in RS_SITES: {unknown}")
        for site, address in self.site_addresses.items():
            if not 1 <= len(address) <= 500:
                raise ValueError(f"the return address of site {site!r} needs 1..500 characters")
        return self

    def site_address(self, site: str) -> str:
        """The return address of ``site``'s receiving dock (default ``return_address``)."""
        return self.site_addresses.get(site, self.return_address)

    @model_validator(mode="after")
    def _connectors_have_credentials(self) -> Settings:
        needs = {
            "shopify": ("shopify_shop", "shopify_access_token"),
            "woocommerce": (
                "woocommerce_url",
                "woocommerce_consumer_key",
                "woocommerce_consumer_secret",
            ),
        }
        for name in self.connectors:
            missing = [f for f in needs[name] if getattr(self, f) is None]
            if missing:
                raise ValueError(f"connector {name} needs {', '.join(missing)}")
        if self.env != "dev":  # credentials never cross the network in clear text
            for field in ("shopify_admin_url", "woocommerce_url"):
                url = getattr(self, field)
                if url and not url.startswith("https://"):
                    raise ValueError(f"{field} must be an https:// URL outside dev")
        return self

    @model_validator(mode="after")
    def _refuse_clear_text_smtp_login(self) -> Settings:
        if self.env != "dev" and self.smtp_security == "none" and self.smtp_username:
            raise ValueError(
                "RS_SMTP_SECURITY=none would send the SMTP password in clear text outside "
                "dev: use starttls or ssl"
            )
        return self

    @field_validator("tracking_secrets")
    @classmethod
    def _bounded_carriers(cls, v: dict[str, str]) -> dict[str, str]:
        for carrier, secret in v.items():
            if not 1 <= len(carrier) <= 32 or not secret:
                raise ValueError("a tracking secret needs a carrier name of 1..32 characters")
        return v

    @model_validator(mode="after")
    def _refuse_weak_secrets(self) -> Settings:
        if self.webhook_url and not self.webhook_secret:
            raise ValueError("RS_WEBHOOK_URL needs RS_WEBHOOK_SECRET (the receiver checks it)")
        if self.env == "dev":
            return self
        hint = (
            "set it to a long random value "
            "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
        if self.secret_key == DEFAULT_SECRET_KEY:
            raise ValueError(
                f"RS_SECRET_KEY is still the placeholder {DEFAULT_SECRET_KEY!r} with "
                f"RS_ENV={self.env!r}; {hint}"
            )
        for name, value, min_length in (
            ("RS_SECRET_KEY", self.secret_key, MIN_SECRET_KEY_LENGTH),
            ("RS_BOOTSTRAP_API_KEY", self.bootstrap_api_key, 24),
            ("RS_WEBHOOK_SECRET", self.webhook_secret, MIN_SECRET_KEY_LENGTH),
            *(
                (f"RS_TRACKING_SECRETS[{carrier!r}]", secret, MIN_SECRET_KEY_LENGTH)
                for carrier, secret in self.tracking_secrets.items()
            ),
        ):
            why = keys.weakness(value, min_length=min_length) if value is not None else None
            if why is not None:
                raise ValueError(f"{name} is {why} with RS_ENV={self.env!r}; {hint}")
        return self

    def key(self, purpose: str) -> str:
        """The key of one purpose (hex), derived from ``secret_key``.

        See :func:`gateway.security.keys.derive`.

        Raises:
            ValueError: for an unknown purpose.
        """
        return keys.derive_text(self.secret_key, purpose)
