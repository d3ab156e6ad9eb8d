"""The one client for TikTok's Business API (Events API v1.3 and partner audiences).

Every failure comes out as a TikTokError whose `retryable` flag tells the caller whether
sending the same request again can succeed.
"""

import json
from dataclasses import dataclass
from typing import Any

import requests

DEFAULT_BASE_URL = "https://business-api.tiktok.com"
EVENT_TRACK_PATH = "/open_api/v1.3/event/track/"
AUDIENCE_PATH = "/open_api/v1.3/segment/audience/"
AUDIENCE_MAPPING_PATH = "/open_api/v1.3/segment/mapping/"
LOOKALIKE_PATH = "/open_api/v1.3/dmp/custom_audience/lookalike/create/"

RESPONSE_TEXT_LIMIT = 2000
MAX_EVENTS_PER_REQUEST = 1000  # seed and TIKTOK.md: up to 1,000 items in `data`

# TikTok answers HTTP 200 even on errors; the verdict is the body's `code`
# (TIKTOK.md "Response"/"Codes"; Segment's tiktok-conversions and RudderStack's tiktok_ads
# check `code` the same way). 40100 = too many requests (retry with backoff),
# 50000 / 50002 = server error / service unavailable. Every other non-zero code
# (40001 no permission, 40002 validation, 40003 bad user data, 40105 token invalid, ...)
# will fail again unchanged, so it is not retryable.
RETRYABLE_CODES = frozenset({40100, 50000, 50002})
RATE_LIMITED_CODE = 40100

# Mistakes in our own configuration: retrying cannot help.
_CONFIG_ERRORS = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidHeader,
)


class TikTokError(Exception):
    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        code: int | None = None,
        http_status: int | None = None,
        request_id: str | None = None,
        response_text: str = "",
    ):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.code = code
        self.http_status = http_status
        self.request_id = request_id
        self.response_text = (response_text or "")[:RESPONSE_TEXT_LIMIT]

    def __str__(self) -> str:
        parts = [self.message]
        if self.code is not None:
            parts.append(f"code={self.code}")
        if self.http_status is not None:
            parts.append(f"http={self.http_status}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        parts.append("retryable" if self.retryable else "not retryable")
        return " ".join(parts)

    def __reduce__(self):
        # Keyword-only arguments break default exception pickling (Celery results, logging).
        kwargs = {
            "retryable": self.retryable,
            "code": self.code,
            "http_status": self.http_status,
            "request_id": self.request_id,
            "response_text": self.response_text,
        }
        return (_rebuild_error, (self.message, kwargs))


def _rebuild_error(message: str, kwargs: dict) -> TikTokError:
    return TikTokError(message, **kwargs)


@dataclass
class TikTokResponse:
    code: int
    message: str
    request_id: str | None
    data: Any
    http_status: int
    response_text: str


class TikTokClient:
    def __init__(
        self,
        base_url: str,
        access_token: str,
        timeout: float = 10.0,
        session: requests.Session | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.access_token = access_token
        self.timeout = timeout
        self.session = session or requests.Session()

    # --- Events API ---------------------------------------------------------------

    def track_events(
        self,
        *,
        pixel_code: str,
        events: list[dict],
        test_event_code: str | None = None,
        partner_name: str | None = None,
    ) -> TikTokResponse:
        return self.track_event_texts(
            pixel_code=pixel_code,
            event_texts=[json.dumps(event) for event in events],
            test_event_code=test_event_code,
            partner_name=partner_name,
        )

    def track_event_texts(
        self,
        *,
        pixel_code: str,
        event_texts: list[str],
        test_event_code: str | None = None,
        partner_name: str | None = None,
    ) -> TikTokResponse:
        """track_events for items already written as JSON (the outbox stores them so): they go into the body
        as they are, without being decoded and encoded again."""
        body = track_body(pixel_code, event_texts, test_event_code=test_event_code, partner_name=partner_name)
        return self.send(PreparedPost(EVENT_TRACK_PATH, body))

    # --- Partner audiences --------------------------------------------------------

    def audience_create(self, *, advertiser_id: str, name: str) -> str:
        body = {
            "advertiser_id": advertiser_id,
            "custom_audience_name": name,
            "action": "create",
        }
        return _created_audience_id(self._post(AUDIENCE_PATH, body), "audience")

    def lookalike_create(
        self,
        *,
        advertiser_id: str,
        name: str,
        source_audience_id: str,
        audience_size: str,
        location_ids: list[str],
        include_source: bool = False,
    ) -> str:
        """Create a lookalike of an audience (TIKTOK.md "Audiences"); returns its audience id."""
        spec = {
            "source_audience_id": source_audience_id,
            "audience_size": audience_size,
            "include_source": include_source,
            "location_ids": list(location_ids),
        }
        body = {"advertiser_id": advertiser_id, "custom_audience_name": name, "lookalike_spec": spec}
        return _created_audience_id(self._post(LOOKALIKE_PATH, body), "lookalike")

    def audience_members(self, **members) -> TikTokResponse:
        """Add or delete members (the arguments of prepare_audience_members) and send the request now."""
        return self.send(self.prepare_audience_members(**members))

    def prepare_audience_members(
        self,
        *,
        advertiser_id: str,
        audience_id: str,
        action: str,
        id_schema: list[str],
        rows: list[list[str | None]],
    ) -> "PreparedPost":
        """The members request, serialised, for send(): a caller that takes a rate-limit slot per request
        builds the (large) body first, so the request leaves as soon as the slot is granted."""
        if action not in ("add", "delete"):
            raise ValueError(f"action must be 'add' or 'delete', got {action!r}")
        body = {
            "advertiser_ids": [advertiser_id],
            "action": action,
            "id_schema": list(id_schema),
            "batch_data": build_batch_data(audience_id, id_schema, rows),
        }
        return PreparedPost(AUDIENCE_MAPPING_PATH, json.dumps(body))

    def send(self, prepared: "PreparedPost") -> TikTokResponse:
        http_response = self._send(prepared.path, prepared.data)
        return parse_response(http_response.status_code, http_response.text)

    # --- transport ----------------------------------------------------------------

    def close(self) -> None:
        self.session.close()

    def _post(self, path: str, body: dict) -> TikTokResponse:
        return self.send(PreparedPost(path, json.dumps(body)))

    def _send(self, path: str, data: str) -> requests.Response:
        headers = {
            "Access-Token": self.access_token,
            "Content-Type": "application/json",
        }
        try:
            return self.session.post(
                self.base_url + path,
                data=data,
                headers=headers,
                timeout=self.timeout,
            )
        except requests.Timeout as exc:
            raise TikTokError(f"timeout after {self.timeout}s: {exc}", retryable=True) from exc
        except _CONFIG_ERRORS as exc:
            raise TikTokError(f"bad request setup: {exc}", retryable=False) from exc
        except requests.RequestException as exc:
            # Connection refused/reset, broken chunked body, ...: transient by nature.
            raise TikTokError(f"connection error: {exc}", retryable=True) from exc


@dataclass(frozen=True)
class PreparedPost:
    path: str
    data: str  # the JSON body


def track_body(
    pixel_code: str, event_texts: list[str], *, test_event_code: str | None = None, partner_name: str | None = None
) -> str:
    """The Events API v1.3 `event/track/` body (TIKTOK.md "Events API") around items written as JSON."""
    if not pixel_code:
        raise ValueError("pixel_code is required")
    if not event_texts or len(event_texts) > MAX_EVENTS_PER_REQUEST:
        raise ValueError(f"events must hold 1..{MAX_EVENTS_PER_REQUEST} items, got {len(event_texts)}")
    fields: dict[str, Any] = {"event_source": "web", "event_source_id": pixel_code}
    if test_event_code:
        fields["test_event_code"] = test_event_code
    if partner_name:
        fields["partner_name"] = partner_name
    return json.dumps(fields)[:-1] + ', "data": [' + ", ".join(event_texts) + "]}"


def build_batch_data(audience_id: str, id_schema: list[str], rows: list[list[str | None]]) -> list[list[dict]]:
    """`segment/mapping` rows: one entry per id_schema type, `{}` where the value is missing
    (TIKTOK.md "Audiences"; Segment's tiktok-audiences sends the same shape)."""
    if not id_schema:
        raise ValueError("id_schema must not be empty")
    batch: list[list[dict]] = []
    for index, row in enumerate(rows):
        if len(row) != len(id_schema):
            raise ValueError(f"rows[{index}] has {len(row)} values, id_schema has {len(id_schema)}")
        entries = [{"id": value, "audience_ids": [audience_id]} if value else {} for value in row]
        if any(entries):
            batch.append(entries)
    if not batch:
        raise ValueError("no member ids to send")
    return batch


def parse_response(http_status: int, text: str) -> TikTokResponse:
    """Turn an HTTP answer into a TikTokResponse, or raise TikTokError classified for retry."""
    payload = _json_object_or_none(text)
    code = _int_or_none(payload.get("code")) if payload else None
    request_id = payload.get("request_id") if payload else None
    message = str(payload.get("message", "")) if payload else ""

    def error(reason: str, retryable: bool) -> TikTokError:
        return TikTokError(
            reason,
            retryable=retryable,
            code=code,
            http_status=http_status,
            request_id=request_id,
            response_text=text,
        )

    if http_status == 429 or http_status >= 500:
        raise error(f"HTTP {http_status} {message}".strip(), retryable=True)
    if 400 <= http_status < 500:
        raise error(f"HTTP {http_status} {message}".strip(), retryable=False)
    if code is None:
        raise error(
            f"malformed answer (HTTP {http_status}): no JSON object with an integer code",
            True,
        )
    if code != 0:
        raise error(message or f"TikTok error {code}", retryable=code in RETRYABLE_CODES)
    return TikTokResponse(
        code=code,
        message=message,
        request_id=request_id,
        data=payload.get("data"),
        http_status=http_status,
        response_text=text[:RESPONSE_TEXT_LIMIT],
    )


def _created_audience_id(response: TikTokResponse, what: str) -> str:
    data = response.data if isinstance(response.data, dict) else {}
    audience_id = data.get("audience_id")
    if not audience_id:
        # Not retryable: the audience may exist already, a retry could create a twin.
        raise TikTokError(
            f"{what} created but no data.audience_id in the answer",
            retryable=False,
            code=response.code,
            http_status=response.http_status,
            request_id=response.request_id,
            response_text=response.response_text,
        )
    return str(audience_id)


def _json_object_or_none(text: str) -> dict | None:
    try:
        payload = json.loads(text)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def client_for(access_token: str) -> TikTokClient:
    """A client configured from Django settings (read here, so importing needs no settings)."""
    from django.conf import settings

    return TikTokClient(
        getattr(settings, "TIKTOK_API_BASE_URL", DEFAULT_BASE_URL),
        access_token,
        timeout=float(getattr(settings, "TIKTOK_HTTP_TIMEOUT", 10.0)),
    )
