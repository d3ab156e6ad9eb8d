"""The tracker's JSON API over requests, with retries that are safe to make.

Retries: connection errors and 502/503/504 (and 500, 429) are retried with exponential backoff by
urllib3's Retry, POSTs included, because every call here is idempotent on the tracker's side: a /start
is one row per user and token, and a conversion is one row per transaction_id (or Idempotency-Key,
which this client generates when no transaction id is given, and keeps across the retries of one call).

A 4xx is never retried: it raises TrackerError with the tracker's JSON error (`error`, `message`,
`fields`), which names the field that was wrong.
"""

import uuid
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

DEFAULT_TIMEOUT_S = 10.0
RETRY_STATUSES = (429, 500, 502, 503, 504)


class TrackerError(Exception):
    """The tracker refused the call (4xx), or still failed after the retries (5xx)."""

    def __init__(self, status_code: int, error: str, message: str, fields: dict | None = None, body: Any = None):
        super().__init__(f"HTTP {status_code} {error}: {message}")
        self.status_code = status_code
        self.error = error
        self.message = message
        self.fields = fields or {}
        self.body = body


class TrackerUnavailable(TrackerError):
    """No answer at all after the retries (connection refused, timeouts)."""


@dataclass(frozen=True)
class StartResult:
    created: bool  # False: this user had already started with this token
    telegram_user_id: int
    utm_id: str
    click_id: str | None
    campaign: str


@dataclass(frozen=True)
class ConversionResult:
    outcome: str  # created, updated or unchanged
    conversion_id: str
    status: str
    goal: str
    amount: int
    currency: str
    utm_id: str | None
    click_id: str | None
    time_to_conversion: int | None


class TrackerClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retries: int = 3,
        backoff_factor: float = 0.5,
        session: requests.Session | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        retry = Retry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            backoff_factor=backoff_factor,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET", "POST"}),  # safe: the tracker's intake is idempotent
            respect_retry_after_header=True,
            raise_on_status=False,  # give us the last answer, to raise TrackerError with its body
        )
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Authorization": f"Api-Key {api_key}", "User-Agent": "tracker-client/1"})

    def close(self) -> None:
        """Close the pooled connections (a long-running bot keeps one client for its whole life)."""
        self.session.close()

    def __enter__(self) -> "TrackerClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- bot ------------------------------------------------------------------------------------

    def track_start(
        self,
        *,
        token: str,
        user_id: int,
        username: str = "",
        first_name: str = "",
        language_code: str = "",
        referrer: str = "telegram_bot_start",
        consent: bool | None = None,
    ) -> StartResult:
        """Report `/start <token>` (the token is the click id from the landing page, or a utm_id)."""
        body: dict[str, Any] = {
            "utm_id": token,
            "user_id": user_id,
            "username": username or "",
            "first_name": first_name or "",
            "language_code": language_code or "",
            "referrer": referrer,
        }
        if consent is not None:
            body["consent"] = consent
        answer = self._call("POST", "/api/v1/utm/track/click", json=body)
        return StartResult(**{name: answer[name] for name in StartResult.__dataclass_fields__})

    def conversion(
        self,
        *,
        amount_minor: int,
        utm_id: str | None = None,
        customer_id: str | None = None,
        currency: str | None = None,
        transaction_id: str | None = None,
        event: str | None = None,
        status: str | None = None,
        product_name: str | None = None,
        product_id: str | None = None,
        consent: bool | None = None,
        idempotency_key: str | None = None,
    ) -> ConversionResult:
        """Report a purchase (amount in minor units: 5000 = 50.00). Give a transaction_id (the payment's
        id) so a repeat is the same conversion; without one, an Idempotency-Key covers this call's retries."""
        fields = {
            "utm_id": utm_id,
            "customer_id": customer_id,
            "amount": amount_minor,
            "currency": currency,
            "transaction_id": transaction_id,
            "event": event,
            "status": status,
            "product_name": product_name,
            "product_id": product_id,
            "consent": consent,
        }
        body = {name: value for name, value in fields.items() if value is not None}
        headers = {}
        if not transaction_id:
            headers["Idempotency-Key"] = idempotency_key or uuid.uuid4().hex
        answer = self._call("POST", "/api/v1/utm/webhook/conversion", json=body, headers=headers)
        return ConversionResult(**{name: answer[name] for name in ConversionResult.__dataclass_fields__})

    def conversions(self, conversions: list[dict[str, Any]]) -> list[ConversionResult]:
        """Report up to 500 purchases in one call. Each is a dict of the webhook's JSON fields (`amount` in
        minor units) with its `transaction_id`, so a retried batch counts nothing twice. All are recorded or,
        on an error (TrackerError names the field: conversions[3].amount), none. Results in the order given."""
        answer = self._call("POST", "/api/v1/utm/webhook/conversions", json={"conversions": conversions})
        return [ConversionResult(**{name: item[name] for name in ConversionResult.__dataclass_fields__})
                for item in answer["conversions"]]  # fmt: skip

    def tiktok_login_link(self, *, telegram_user_id: int) -> str:
        """A TikTok Login Kit link for this Telegram user (the tracker must have a Login Kit app)."""
        return self._call("POST", "/api/v1/tiktok/login-link", json={"telegram_user_id": telegram_user_id})["url"]

    # --- management key -------------------------------------------------------------------------

    def journey(self, utm_id_or_click_id: str) -> dict:
        """A link's (or one click's) journey; needs a management-scope key."""
        return self._call("GET", f"/api/v1/utm/{utm_id_or_click_id}/journey")

    # --- plumbing ---------------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs) -> dict:
        status_code, reason, body, text = self._send(method, path, **kwargs)
        if status_code >= 400:
            details = body if isinstance(body, dict) else {}
            raise TrackerError(
                status_code,
                str(details.get("error", "http_error")),
                str(details.get("message", reason)),
                details.get("fields") if isinstance(details.get("fields"), dict) else {},
                body if body is not None else text[:500],
            )
        if not isinstance(body, dict):
            raise TrackerError(status_code, "invalid_response", "The tracker did not answer JSON.")
        return body

    def _send(self, method: str, path: str, **kwargs) -> tuple[int, str, Any, str]:
        # The response never outlives this call: an error raised later (and kept by a logger or a test)
        # must not keep its socket open.
        try:
            response = self.session.request(method, self.base_url + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise TrackerUnavailable(0, "unavailable", f"{type(exc).__name__}: {exc}") from None
        with response:
            try:
                body = response.json()
            except ValueError:
                body = None
            return response.status_code, response.reason or "", body, response.text
