"""A fake of TikTok's Business API that serves real HTTP, for tests and local runs.

In-process:
    with FakeTikTok(port=0) as fake:
        client = TikTokClient(fake.url, "token")
        ...
        fake.accepted_events()

Standalone: ``python -m tiktok_ads.fake_server --port 9555 --rate-limit 10``, driven from
other processes through the ``/__fake__/...`` control endpoints.

It also plays TikTok Login Kit v2 (OAuth for the web): the authorize page (which approves at once
as the fake's current user and redirects back), the token endpoint and /v2/user/info/. Those follow
https://developers.tiktok.com/doc/login-kit-web,
https://developers.tiktok.com/doc/oauth-user-access-token-management,
https://developers.tiktok.com/doc/oauth-error-handling and
https://developers.tiktok.com/doc/tiktok-api-v2-get-user-info.

The rules it enforces come from /work/shared/TIKTOK.md (what Segment, RudderStack and Stape
send in production) and the seed (10 requests/s, 1,000 events a request). Like TikTok, it
answers HTTP 200 with a non-zero `code` for every API-level error.
"""

import argparse
import bisect
import contextlib
import copy
import ipaddress
import json
import math
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qs, urlencode, urlsplit

EVENT_TRACK_PATH = "/open_api/v1.3/event/track/"
AUDIENCE_PATH = "/open_api/v1.3/segment/audience/"
AUDIENCE_MAPPING_PATH = "/open_api/v1.3/segment/mapping/"
LOOKALIKE_PATH = "/open_api/v1.3/dmp/custom_audience/lookalike/create/"
CONTROL_PREFIX = "/__fake__/"
# Login Kit v2. On TikTok the authorize page is on www.tiktok.com and the others on
# open.tiktokapis.com; the fake serves all three, so one base URL fits both settings.
LOGIN_AUTHORIZE_PATH = "/v2/auth/authorize/"
LOGIN_TOKEN_PATH = "/v2/oauth/token/"
LOGIN_USER_INFO_PATH = "/v2/user/info/"
LOGIN_PATHS = frozenset({LOGIN_AUTHORIZE_PATH, LOGIN_TOKEN_PATH, LOGIN_USER_INFO_PATH})
# Scopes a Login Kit web app can ask for, and the user fields each one opens.
LOGIN_SCOPE_FIELDS = {
    "user.info.basic": frozenset({"open_id", "union_id", "avatar_url", "avatar_url_100", "avatar_large_url",
                                  "display_name"}),
    "user.info.profile": frozenset({"bio_description", "profile_deep_link", "is_verified", "username"}),
    "user.info.stats": frozenset({"follower_count", "following_count", "likes_count", "video_count"}),
    "video.list": frozenset(),
}  # fmt: skip
ACCESS_TOKEN_TTL_S = 86_400  # the docs' expires_in for a new access token
REFRESH_TOKEN_TTL_S = 31_536_000  # and refresh_expires_in
DEFAULT_LOGIN_USER = {
    "open_id": "-000BeGpTf0Xr0zqBvJwnbRxaYfmwKrXsN3O",
    "union_id": "c9c60f44-a68e-4f5d-84dd-ce22faeb0ba1",
    "display_name": "Fake TikToker",
    "avatar_url": "https://p16-sign.tiktokcdn-us.com/fake-avatar.jpeg",
    "username": "fake.tiktoker",
    "bio_description": "",
    "profile_deep_link": "https://vm.tiktok.com/fake/",
    "is_verified": False,
    "follower_count": 0,
    "following_count": 0,
    "likes_count": 0,
    "video_count": 0,
}

OK = 0
NO_PERMISSION = 40001
INVALID_PARAMETERS = 40002
RATE_LIMITED = 40100
TOKEN_INVALID = 40105
NOT_FOUND = 40400

MESSAGES = {
    NO_PERMISSION: "No permission to operate",
    INVALID_PARAMETERS: "Invalid parameters",
    RATE_LIMITED: "Too many requests",
    TOKEN_INVALID: "Access token is invalid",
    50000: "System error",
    50002: "Service unavailable",
}

EVENT_SOURCES = frozenset({"web", "app", "offline", "crm"})
CONTENT_TYPES = frozenset({"product", "product_group"})
LOOKALIKE_SIZES = frozenset({"NARROW", "BALANCED", "BROAD"})
# Id types seen in Segment's tiktok-audiences and RudderStack's tiktok_audience.
ID_SCHEMA_DIGEST_LENGTH = {
    "EMAIL_SHA256": 64,
    "PHONE_SHA256": 64,
    "IDFA_SHA256": 64,
    "GAID_SHA256": 64,
    "AAID_SHA256": 64,
    "IDFA_MD5": 32,
    "GAID_MD5": 32,
    "AAID_MD5": 32,
}
HASHED_USER_FIELDS = ("email", "phone", "external_id")
PLAIN_USER_FIELDS = ("ttclid", "ttp", "user_agent", "locale")
FAULT_MODES = frozenset({"timeout", "malformed"})  # plus "http<status>" and "code:<N>"
INTERESTING_HEADERS = ("Access-Token", "Authorization", "Content-Type", "User-Agent")

# A value above this is milliseconds (10**11 s is the year 5138): TikTok wants seconds.
MILLISECONDS_THRESHOLD = 10**11
# Default age limit for event_time: 7 days, TikTok's ttclid life (Segment's tiktok-conversions
# field docs). Amperity's TikTok docs say events must be within 28 days, so it is a setting
# (max_event_age_s) rather than a fixed rule.
SEVEN_DAYS_S = 7 * 24 * 3600
MAX_AUDIENCE_NAME = 128  # TIKTOK.md: custom_audience_name <= 128 chars
# Lowercase only: TIKTOK.md says lowercase hex, so an uppercase digest here is our bug.
_LOWER_HEX = {64: re.compile(r"[0-9a-f]{64}"), 32: re.compile(r"[0-9a-f]{32}")}
_CURRENCY = re.compile(r"[A-Z]{3}")
_FAULT_CODE = re.compile(r"code:(\d+)")
_FAULT_HTTP = re.compile(r"http([45]\d\d)")


class Invalid(Exception):
    """A request that TikTok would answer with 40002; the message names the field."""


class ApiError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Answer:
    http_status: int = 200
    payload: dict | list | None = None
    raw: bytes | None = None  # sent as-is instead of JSON (malformed, HTML error pages)
    drop: bool = False  # close the connection without answering
    headers: dict | None = None  # extra response headers (Location for the authorize redirects)

    @property
    def code(self) -> int | None:
        return self.payload.get("code") if isinstance(self.payload, dict) else None


# --- validation helpers --------------------------------------------------------------


def _check(condition: bool, where: str, problem: str) -> None:
    if not condition:
        raise Invalid(f"{where}: {problem}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _is_nonempty_str(value) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _is_digest(value, length: int = 64) -> bool:
    return isinstance(value, str) and _LOWER_HEX[length].fullmatch(value) is not None


def _check_optional_str(container: dict, key: str, where: str) -> None:
    if key in container:
        _check(isinstance(container[key], str), f"{where}.{key}", "must be a string")


def _check_optional_number(container: dict, key: str, where: str) -> None:
    if key in container:
        _check(_is_number(container[key]), f"{where}.{key}", "must be a number")


def validate_track_body(
    body,
    *,
    now: float,
    max_batch: int = 1000,
    max_age_s: float = SEVEN_DAYS_S,
    max_future_s: float = 3600,
) -> None:
    """Raise Invalid naming the first bad field of an `event/track` body."""
    _check(isinstance(body, dict), "body", "must be a JSON object")
    _check(
        body.get("event_source") in EVENT_SOURCES,
        "event_source",
        f"must be one of {sorted(EVENT_SOURCES)}",
    )
    _check(
        _is_nonempty_str(body.get("event_source_id")),
        "event_source_id",
        "must be a non-empty string",
    )
    _check_optional_str(body, "test_event_code", "body")
    _check_optional_str(body, "partner_name", "body")
    data = body.get("data")
    _check(isinstance(data, list) and data != [], "data", "must be a non-empty list")
    _check(
        len(data) <= max_batch,
        "data",
        f"at most {max_batch} events per request, got {len(data)}",
    )
    for index, item in enumerate(data):
        _validate_event(
            item,
            f"data[{index}]",
            now=now,
            max_age_s=max_age_s,
            max_future_s=max_future_s,
        )


def _validate_event(item, where: str, *, now: float, max_age_s: float, max_future_s: float) -> None:
    _check(isinstance(item, dict), where, "must be an object")
    _check(
        _is_nonempty_str(item.get("event")),
        f"{where}.event",
        "must be a non-empty string",
    )
    _validate_event_time(item.get("event_time"), f"{where}.event_time", now, max_age_s, max_future_s)
    if "event_id" in item:
        _check(
            _is_nonempty_str(item["event_id"]),
            f"{where}.event_id",
            "must be a non-empty string",
        )
    if "user" in item:
        _validate_user(item["user"], f"{where}.user")
    if "properties" in item:
        _validate_properties(item["properties"], f"{where}.properties")
    if "page" in item:
        page = item["page"]
        _check(isinstance(page, dict), f"{where}.page", "must be an object")
        _check_optional_str(page, "url", f"{where}.page")
        _check_optional_str(page, "referrer", f"{where}.page")
    if "limited_data_use" in item:
        _check(
            isinstance(item["limited_data_use"], bool),
            f"{where}.limited_data_use",
            "must be a boolean",
        )


def _validate_event_time(value, where: str, now: float, max_age_s: float, max_future_s: float) -> None:
    # TIKTOK.md: integer Unix seconds; ISO strings and milliseconds are known mistakes.
    _check(_is_int(value), where, "must be an integer Unix timestamp in seconds")
    _check(
        value < MILLISECONDS_THRESHOLD,
        where,
        "looks like milliseconds; send Unix seconds",
    )
    _check(value >= now - max_age_s, where, f"older than {max_age_s / 86400:g} days")
    _check(value <= now + max_future_s, where, "is in the future")


def _validate_user(user, where: str) -> None:
    _check(isinstance(user, dict), where, "must be an object")
    for key in HASHED_USER_FIELDS:
        if key in user:
            _validate_hashed(user[key], f"{where}.{key}")
    for key in PLAIN_USER_FIELDS:
        _check_optional_str(user, key, where)
    if "ip" in user:
        _check(
            _is_ip_address(user["ip"]),
            f"{where}.ip",
            "must be a plain (unhashed) IP address",
        )


def _validate_hashed(value, where: str) -> None:
    values = value if isinstance(value, list) else [value]
    _check(values != [], where, "must not be an empty list")
    for one in values:
        _check(_is_digest(one), where, "must be a lowercase SHA-256 hex digest (64 chars)")


def _is_ip_address(value) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _validate_properties(properties, where: str) -> None:
    _check(isinstance(properties, dict), where, "must be an object")
    _check_optional_number(properties, "value", where)
    if "currency" in properties:
        currency = properties["currency"]
        ok = isinstance(currency, str) and _CURRENCY.fullmatch(currency) is not None
        _check(ok, f"{where}.currency", "must be a 3-letter ISO 4217 code, e.g. EUR")
    if "content_type" in properties:
        _check(
            properties["content_type"] in CONTENT_TYPES,
            f"{where}.content_type",
            "must be product or product_group",
        )
    for key in ("order_id", "description", "query"):
        _check_optional_str(properties, key, where)
    if "contents" in properties:
        _validate_contents(properties["contents"], f"{where}.contents")


def _validate_contents(contents, where: str) -> None:
    _check(isinstance(contents, list), where, "must be a list")
    for index, content in enumerate(contents):
        item_where = f"{where}[{index}]"
        _check(isinstance(content, dict), item_where, "must be an object")
        for key in ("content_id", "content_name", "content_category", "brand"):
            _check_optional_str(content, key, item_where)
        for key in ("price", "quantity"):
            _check_optional_number(content, key, item_where)
        if "content_type" in content:
            _check(
                content["content_type"] in CONTENT_TYPES,
                f"{item_where}.content_type",
                "invalid",
            )


def validate_fault_mode(mode: str) -> str:
    text = mode if isinstance(mode, str) else ""
    if text in FAULT_MODES or _FAULT_CODE.fullmatch(text) or _FAULT_HTTP.fullmatch(text):
        return mode
    raise ValueError(f"unknown fault mode {mode!r}: use http500 (any http4xx/5xx), timeout, malformed or code:<N>")


def new_request_id() -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + uuid.uuid4().hex[:18].upper()


def api_answer(code: int, message: str | None = None, data: dict | None = None) -> Answer:
    payload = {
        "code": code,
        "message": message or ("OK" if code == OK else MESSAGES.get(code, "Error")),
        "request_id": new_request_id(),
        "data": data if data is not None else {},
    }
    return Answer(payload=payload)


# --- the fake ------------------------------------------------------------------------


class FakeTikTok:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        rate_limit: int = 10,
        rate_period_s: float = 1.0,
        timeout_delay: float = 5.0,
        max_batch: int = 1000,
        max_event_age_s: float = SEVEN_DAYS_S,
        max_future_s: float = 3600,
        min_lookalike_source: int = 100,
        clock: Callable[[], float] = time.time,
        verbose: bool = False,
    ):
        self.host = host
        self.port = port
        self.rate_limit = rate_limit  # requests per rate_period_s; 0 disables the limit
        self.rate_period_s = rate_period_s
        self.timeout_delay = timeout_delay
        self.max_batch = max_batch
        self.max_event_age_s = max_event_age_s
        self.max_future_s = max_future_s
        self.min_lookalike_source = min_lookalike_source
        self.clock = clock
        self.verbose = verbose
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes = {
            EVENT_TRACK_PATH: self._track,
            AUDIENCE_PATH: self._audience_create,
            AUDIENCE_MAPPING_PATH: self._audience_mapping,
            LOOKALIKE_PATH: self._lookalike_create,
        }
        self._reset_state()

    def _reset_state(self) -> None:
        with self._lock:
            self._pixel_tokens: dict[str, set[str]] = {}
            self._accepted: list[dict] = []
            self._requests: list[dict] = []
            self._faults: deque[str] = deque()
            self._recent_hits: deque[float] = deque()
            self._audiences: dict[str, dict] = {}
            self._next_audience_id = 7_000_000_001
            self.latency = 0.0
            self._login_clients: dict[str, dict] = {}
            self._login_user = dict(DEFAULT_LOGIN_USER)
            self._login_codes: dict[str, dict] = {}
            self._login_access_tokens: dict[str, dict] = {}
            self._login_refresh_tokens: dict[str, dict] = {}
            self._login_denials = 0

    # --- lifecycle ---

    def start(self) -> Self:
        self._bind()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-tiktok",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self, announce: Callable[[str], None] = print) -> None:
        """Serve in the calling thread until interrupted (CLI and management command)."""
        self._bind()
        announce(f"Fake TikTok Business API listening on {self.url} (rate limit {self.rate_limit}/s)")
        try:
            self._server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
        finally:
            self._close_server()

    def stop(self) -> None:
        self._stopping.set()  # wakes requests held by latency or the timeout fault
        if self._server is not None:
            self._server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._close_server()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeTikTok is not started")
        return f"http://{self.host}:{self.port}"

    def _bind(self) -> None:
        if self._server is not None:
            raise RuntimeError("FakeTikTok is already started")
        self._stopping.clear()
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]

    def _close_server(self) -> None:
        if self._server is not None:
            self._server.server_close()
            self._server = None

    # --- switches and set-up ---

    def add_pixel(self, pixel_code: str, access_token: str) -> None:
        """Once any pixel is registered, only registered tokens work, each on its pixels."""
        with self._lock:
            self._pixel_tokens.setdefault(pixel_code, set()).add(access_token)

    def add_login_client(self, client_key: str, client_secret: str, redirect_uri: str) -> None:
        """Register a Login Kit app and one of its redirect URIs (TikTok allows up to 10 per app)."""
        with self._lock:
            client = self._login_clients.setdefault(client_key, {"secret": client_secret, "redirect_uris": set()})
            client["secret"] = client_secret
            client["redirect_uris"].add(redirect_uri)

    def set_login_user(self, **fields) -> None:
        """The TikTok account that the next authorisations approve as (open_id, display_name, ...)."""
        with self._lock:
            self._login_user = {**DEFAULT_LOGIN_USER, **fields}

    def deny_next_login(self, n: int = 1) -> None:
        """The next n authorisations are refused by the user (error=access_denied)."""
        with self._lock:
            self._login_denials += int(n)

    def fail_next(self, n: int = 1, mode: str = "http500") -> None:
        validate_fault_mode(mode)
        with self._lock:
            self._faults.extend([mode] * int(n))

    def set_latency(self, seconds: float) -> None:
        with self._lock:
            self.latency = float(seconds)

    def reset(self) -> None:
        self._reset_state()

    # --- inspection ---

    def accepted_events(self, pixel_code: str | None = None) -> list[dict]:
        """Every accepted event item, plus `pixel_code`, `test_event_code`, `partner_name`,
        `event_source` and `request_id` of the request that carried it."""
        with self._lock:
            events = [e for e in self._accepted if pixel_code is None or e["pixel_code"] == pixel_code]
            return copy.deepcopy(events)

    @property
    def requests(self) -> list[dict]:
        with self._lock:
            return copy.deepcopy(self._requests)

    def audiences(self) -> dict[str, dict]:
        with self._lock:
            return {audience_id: _audience_view(a) for audience_id, a in self._audiences.items()}

    def audience_members(self, audience_id: str) -> dict[str, set[str]]:
        with self._lock:
            members = self._audiences[audience_id]["members"]
            return {id_type: set(ids) for id_type, ids in members.items()}

    # --- request handling (called from server threads) ---

    def handle(
        self, method: str, path: str, headers: dict, raw_body: bytes, query: str = "", arrived: float | None = None
    ) -> Answer:
        """`arrived`: when the request line was read (monotonic), which the rate limit counts."""
        if path.startswith(CONTROL_PREFIX):
            return self._control(method, path, raw_body)
        if path in LOGIN_PATHS:
            return self._login(method, path, query, headers, raw_body)
        return self._api(method, path, headers, raw_body, arrived=time.monotonic() if arrived is None else arrived)

    def _api(self, method: str, path: str, headers: dict, raw_body: bytes, *, arrived: float) -> Answer:
        body = _parse_json(raw_body)
        route = self._routes.get(path)
        if route is None or method != "POST":
            answer = Answer(
                http_status=404,
                payload={"code": NOT_FOUND, "message": f"{method} {path} not found"},
            )
            return self._record(path, headers, body, answer)
        if self.latency:
            self._stopping.wait(self.latency)
        fault = self._take_fault()
        if fault is not None:
            return self._faulty_answer(fault, path, headers, body)
        if self._over_rate_limit(arrived):
            return self._record(path, headers, body, api_answer(RATE_LIMITED))
        token = headers.get("Access-Token") or ""
        try:
            if body is _NOT_JSON:
                raise Invalid("body: must be valid JSON")
            with self._lock:
                answer = route(token, body)
        except Invalid as exc:
            answer = api_answer(INVALID_PARAMETERS, str(exc))
        except ApiError as exc:
            answer = api_answer(exc.code, exc.message)
        return self._record(path, headers, body, answer)

    def _take_fault(self) -> str | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _faulty_answer(self, fault: str, path: str, headers: dict, body) -> Answer:
        http_fault = _FAULT_HTTP.fullmatch(fault)
        if http_fault:
            status = int(http_fault.group(1))
            answer = Answer(http_status=status, raw=b"<html><body>%d</body></html>" % status)
        elif fault == "malformed":
            answer = Answer(raw=b"<html>upstream sent an unreadable answer")
        elif fault == "timeout":
            answer = Answer(drop=True)
        else:
            answer = api_answer(int(fault.split(":", 1)[1]), "Injected fault")
        self._record(path, headers, body, answer, fault=fault)
        if fault == "timeout":
            self._stopping.wait(self.timeout_delay)
        return answer

    def _over_rate_limit(self, arrived: float) -> bool:
        """Sliding window over all API endpoints; only admitted requests fill the window.

        Counted by arrival, as a gateway counts: not by when this server got round to the request
        after reading and parsing its body (a 10,000-member batch takes it tens of ms, more when
        several are parsed at once), which would bunch requests that arrived properly spaced."""
        if not self.rate_limit:
            return False
        with self._lock:
            while self._recent_hits and self._recent_hits[0] <= time.monotonic() - 2 * self.rate_period_s:
                self._recent_hits.popleft()
            window_start = arrived - self.rate_period_s
            if sum(1 for hit in self._recent_hits if window_start < hit <= arrived) >= self.rate_limit:
                return True
            bisect.insort(self._recent_hits, arrived)
            return False

    def _record(self, path: str, headers: dict, body, answer: Answer, fault: str | None = None) -> Answer:
        entry = {
            "path": path,
            "headers": {name: headers[name] for name in INTERESTING_HEADERS if name in headers},
            "body": None if body is _NOT_JSON else body,
            "http_status": None if answer.drop else answer.http_status,
            "code": answer.code,
            "fault": fault,
            "time": time.time(),
        }
        with self._lock:
            self._requests.append(entry)
        return answer

    # --- auth ---

    def _check_token(self, token: str) -> None:
        known = set().union(*self._pixel_tokens.values()) if self._pixel_tokens else None
        if not token or (known is not None and token not in known):
            raise ApiError(TOKEN_INVALID, MESSAGES[TOKEN_INVALID])

    def _check_pixel_permission(self, token: str, pixel_code: str) -> None:
        if self._pixel_tokens and token not in self._pixel_tokens.get(pixel_code, ()):
            raise ApiError(NO_PERMISSION, f"No permission to operate pixel {pixel_code}")

    # --- Events API ---

    def _track(self, token: str, body) -> Answer:
        self._check_token(token)
        validate_track_body(
            body,
            now=self.clock(),
            max_batch=self.max_batch,
            max_age_s=self.max_event_age_s,
            max_future_s=self.max_future_s,
        )
        self._check_pixel_permission(token, body["event_source_id"])
        answer = api_answer(OK)
        request_fields = {
            "pixel_code": body["event_source_id"],
            "test_event_code": body.get("test_event_code"),
            "partner_name": body.get("partner_name"),
            "event_source": body["event_source"],
            "request_id": answer.payload["request_id"],
        }
        self._accepted.extend({**item, **request_fields} for item in body["data"])
        return answer

    # --- audiences ---

    def _audience_create(self, token: str, body) -> Answer:
        self._check_token(token)
        _check(isinstance(body, dict), "body", "must be a JSON object")
        _check(
            _is_nonempty_str(body.get("advertiser_id")),
            "advertiser_id",
            "must be a non-empty string",
        )
        _check_audience_name(body.get("custom_audience_name"))
        _check(body.get("action") == "create", "action", "must be 'create'")
        audience_id = self._new_audience(body["advertiser_id"], body["custom_audience_name"], "PARTNER")
        return api_answer(OK, data={"audience_id": audience_id})

    def _audience_mapping(self, token: str, body) -> Answer:
        self._check_token(token)
        _check(isinstance(body, dict), "body", "must be a JSON object")
        advertiser_ids = body.get("advertiser_ids")
        ok = isinstance(advertiser_ids, list) and advertiser_ids and all(map(_is_nonempty_str, advertiser_ids))
        _check(bool(ok), "advertiser_ids", "must be a non-empty list of strings")
        _check(
            body.get("action") in ("add", "delete"),
            "action",
            "must be 'add' or 'delete'",
        )
        id_schema = _validated_id_schema(body.get("id_schema"))
        changes = self._validated_mapping_rows(body.get("batch_data"), id_schema, set(advertiser_ids))
        for audience_id, id_type, member_id in changes:
            members = self._audiences[audience_id]["members"].setdefault(id_type, set())
            if body["action"] == "add":
                members.add(member_id)
            else:
                members.discard(member_id)
        return api_answer(OK)

    def _validated_mapping_rows(self, batch_data, id_schema: list[str], advertiser_ids: set[str]) -> list[tuple]:
        """Check every row before touching state: one bad row rejects the whole batch.

        A request carries up to 10,000 rows: a valid row takes a quick path (no error location formatted,
        each audience looked up once per request); anything else goes through the checks that name it.
        """
        _check(
            isinstance(batch_data, list) and batch_data != [],
            "batch_data",
            "must be a non-empty list",
        )
        changes = []
        audiences_ok: set[str] = set()
        for row_index, row in enumerate(batch_data):
            if not (isinstance(row, list) and len(row) == len(id_schema) and any(row)):
                _check_row(row, f"batch_data[{row_index}]", len(id_schema))
            for column, (id_type, entry) in enumerate(zip(id_schema, row, strict=True)):
                if self._entry_ok(entry, id_type, advertiser_ids, audiences_ok):
                    if entry:
                        changes.extend((audience_id, id_type, entry["id"]) for audience_id in entry["audience_ids"])
                else:
                    where = f"batch_data[{row_index}][{column}]"
                    changes.extend(self._validated_entry(entry, id_type, advertiser_ids, where))
        return changes

    def _entry_ok(self, entry, id_type: str, advertiser_ids: set[str], audiences_ok: set[str]) -> bool:
        """True when _validated_entry would accept the entry (the same checks, without the messages)."""
        if not isinstance(entry, dict):
            return False
        if not entry:
            return True
        if not _is_digest(entry.get("id"), ID_SCHEMA_DIGEST_LENGTH[id_type]):
            return False
        audience_ids = entry.get("audience_ids")
        if not (isinstance(audience_ids, list) and audience_ids != []):
            return False
        for audience_id in audience_ids:
            if not isinstance(audience_id, str):
                return False
            if audience_id not in audiences_ok:
                if not self._audience_ok(audience_id, advertiser_ids):
                    return False
                audiences_ok.add(audience_id)
        return True

    def _audience_ok(self, audience_id: str, advertiser_ids: set[str]) -> bool:
        audience = self._audiences.get(audience_id)
        return audience is not None and audience["type"] != "LOOKALIKE" and audience["advertiser_id"] in advertiser_ids

    def _validated_entry(self, entry, id_type: str, advertiser_ids: set[str], where: str) -> list[tuple]:
        _check(
            isinstance(entry, dict),
            where,
            "must be an object ({} when the value is missing)",
        )
        if not entry:
            return []
        length = ID_SCHEMA_DIGEST_LENGTH[id_type]
        _check(
            _is_digest(entry.get("id"), length),
            f"{where}.id",
            f"must be {length} lowercase hex chars ({id_type})",
        )
        audience_ids = entry.get("audience_ids")
        ok = isinstance(audience_ids, list) and audience_ids != [] and all(isinstance(a, str) for a in audience_ids)
        _check(ok, f"{where}.audience_ids", "must be a non-empty list of strings")
        for audience_id in audience_ids:
            audience = self._audiences.get(audience_id)
            _check(
                audience is not None,
                f"{where}.audience_ids",
                f"unknown audience {audience_id}",
            )
            _check(
                audience["type"] != "LOOKALIKE",
                f"{where}.audience_ids",
                f"{audience_id} is a lookalike",
            )
            owned = audience["advertiser_id"] in advertiser_ids
            _check(
                owned,
                f"{where}.audience_ids",
                f"{audience_id} is not owned by advertiser_ids",
            )
        return [(audience_id, id_type, entry["id"]) for audience_id in audience_ids]

    def _lookalike_create(self, token: str, body) -> Answer:
        self._check_token(token)
        _check(isinstance(body, dict), "body", "must be a JSON object")
        _check(
            _is_nonempty_str(body.get("advertiser_id")),
            "advertiser_id",
            "must be a non-empty string",
        )
        _check_audience_name(body.get("custom_audience_name"))
        spec = body.get("lookalike_spec")
        _check(isinstance(spec, dict), "lookalike_spec", "must be an object")
        source = self._audiences.get(spec.get("source_audience_id"))
        _check(source is not None, "lookalike_spec.source_audience_id", "unknown audience")
        _check(
            source["type"] != "LOOKALIKE",
            "lookalike_spec.source_audience_id",
            "must not be a lookalike",
        )
        _check(
            source["advertiser_id"] == body["advertiser_id"],
            "lookalike_spec.source_audience_id",
            "other advertiser",
        )
        size = _audience_size(source)
        _check(
            size >= self.min_lookalike_source,
            "lookalike_spec.source_audience_id",
            f"too small ({size} people)",
        )
        _check(
            spec.get("audience_size") in LOOKALIKE_SIZES,
            "lookalike_spec.audience_size",
            "NARROW|BALANCED|BROAD",
        )
        if "include_source" in spec:
            _check(
                isinstance(spec["include_source"], bool),
                "lookalike_spec.include_source",
                "must be a boolean",
            )
        if "location_ids" in spec:
            _check(
                isinstance(spec["location_ids"], list),
                "lookalike_spec.location_ids",
                "must be a list",
            )
        audience_id = self._new_audience(body["advertiser_id"], body["custom_audience_name"], "LOOKALIKE", spec)
        return api_answer(OK, data={"audience_id": audience_id})

    def _new_audience(
        self,
        advertiser_id: str,
        name: str,
        kind: str,
        lookalike_spec: dict | None = None,
    ) -> str:
        audience_id = str(self._next_audience_id)
        self._next_audience_id += 1
        self._audiences[audience_id] = {
            "audience_id": audience_id,
            "advertiser_id": advertiser_id,
            "name": name,
            "type": kind,
            "lookalike_spec": lookalike_spec,
            "members": {},
        }
        return audience_id

    # --- Login Kit v2 ---

    def _login(self, method: str, path: str, query: str, headers: dict, raw_body: bytes) -> Answer:
        params = {key: values[-1] for key, values in parse_qs(query, keep_blank_values=True).items()}
        form = None
        expected_method = "GET" if path in (LOGIN_AUTHORIZE_PATH, LOGIN_USER_INFO_PATH) else "POST"
        if method != expected_method:
            answer = _oauth_error("invalid_request", f"{method} is not allowed")
            answer.http_status = 405
        elif path == LOGIN_AUTHORIZE_PATH:
            with self._lock:
                answer = self._login_authorize(params)
        else:
            fault = self._take_fault()
            if fault is not None:
                return self._faulty_answer(fault, path, headers, params or None)
            if path == LOGIN_TOKEN_PATH:
                form = {key: values[-1] for key, values in parse_qs(raw_body.decode("utf-8", "replace")).items()}
                with self._lock:
                    answer = self._login_token(headers, form)
            else:
                with self._lock:
                    answer = self._login_user_info(headers, params)
        entry = {
            "path": path,
            "method": method,
            "query": params,
            "headers": {name: headers[name] for name in INTERESTING_HEADERS if name in headers},
            "body": form,
            "http_status": answer.http_status,
            "code": None,
            "fault": None,
            "time": time.time(),
        }
        with self._lock:
            self._requests.append(entry)
        return answer

    def _login_authorize(self, params: dict) -> Answer:
        """TikTok's consent page, approved (or refused) at once as the current fake user."""
        client = self._login_clients.get(params.get("client_key", ""))
        redirect_uri = params.get("redirect_uri", "")
        # Like any OAuth server, an unknown app or an unregistered redirect URI gets an error page:
        # redirecting there would hand a code to whoever wrote the link.
        if client is None:
            return _login_error_page("invalid_client", "Unknown client_key.")
        if redirect_uri not in client["redirect_uris"]:
            return _login_error_page("invalid_request", "redirect_uri is not registered for this app.")
        back = {"state": params["state"]} if "state" in params else {}
        scopes = [scope for scope in params.get("scope", "").split(",") if scope]
        if params.get("response_type") != "code":
            error = {"error": "unsupported_response_type", "error_description": "response_type must be code"}
        elif not scopes or any(scope not in LOGIN_SCOPE_FIELDS for scope in scopes):
            error = {"error": "invalid_scope", "error_description": "The requested scope is invalid."}
        elif self._login_denials:
            self._login_denials -= 1
            error = {"error": "access_denied", "error_description": "The user denied the request."}
        else:
            code = uuid.uuid4().hex + "*0!" + str(int(self.clock()))[-4:]
            self._login_codes[code] = {
                "client_key": params["client_key"],
                "redirect_uri": redirect_uri,
                "scope": ",".join(scopes),
                "user": dict(self._login_user),
                "expires_at": self.clock() + 600,
            }
            return _redirect(redirect_uri, {"code": code, "scopes": ",".join(scopes), **back})
        return _redirect(redirect_uri, {**error, **back})

    def _login_token(self, headers: dict, form: dict) -> Answer:
        if not headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return _oauth_error("invalid_request", "Content-Type must be application/x-www-form-urlencoded.")
        client = self._login_clients.get(form.get("client_key", ""))
        if client is None or form.get("client_secret") != client["secret"]:
            return _oauth_error("invalid_client", "Client key or secret is invalid.")
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            grant = self._login_codes.pop(form.get("code", ""), None)  # one use only, whatever happens next
            if grant is None or grant["client_key"] != form["client_key"] or grant["expires_at"] < self.clock():
                return _oauth_error("invalid_grant", "Authorization code is expired or invalid.")
            if form.get("redirect_uri") != grant["redirect_uri"]:
                return _oauth_error("invalid_grant", "redirect_uri does not match the authorization request.")
        elif grant_type == "refresh_token":
            grant = self._login_refresh_tokens.pop(form.get("refresh_token", ""), None)  # rotated
            if grant is None or grant["client_key"] != form["client_key"]:
                return _oauth_error("invalid_grant", "Refresh token is invalid or expired.")
        else:
            return _oauth_error("unsupported_grant_type", "grant_type must be authorization_code or refresh_token.")
        access_token = "act." + uuid.uuid4().hex + uuid.uuid4().hex
        refresh_token = "rft." + uuid.uuid4().hex + uuid.uuid4().hex
        token = {**grant, "expires_at": self.clock() + ACCESS_TOKEN_TTL_S}
        self._login_access_tokens[access_token] = token
        self._login_refresh_tokens[refresh_token] = token
        return Answer(
            payload={
                "access_token": access_token,
                "expires_in": ACCESS_TOKEN_TTL_S,
                "open_id": grant["user"]["open_id"],
                "refresh_expires_in": REFRESH_TOKEN_TTL_S,
                "refresh_token": refresh_token,
                "scope": grant["scope"],
                "token_type": "Bearer",
            }
        )

    def _login_user_info(self, headers: dict, params: dict) -> Answer:
        scheme, _, access_token = headers.get("Authorization", "").partition(" ")
        token = self._login_access_tokens.get(access_token) if scheme == "Bearer" else None
        if token is None or token["expires_at"] < self.clock():
            return _user_info_error(
                401, "access_token_invalid", "The access token is invalid or not found in the request."
            )
        fields = [field for field in params.get("fields", "").split(",") if field]
        known = frozenset().union(*LOGIN_SCOPE_FIELDS.values())
        if not fields or any(field not in known for field in fields):
            return _user_info_error(400, "invalid_params", "fields: give user fields, e.g. open_id,display_name")
        granted = frozenset().union(*(LOGIN_SCOPE_FIELDS[scope] for scope in token["scope"].split(",")))
        if any(field not in granted for field in fields):
            return _user_info_error(401, "scope_not_authorized", "The user did not authorize the scope required.")
        user = {field: token["user"].get(field) for field in fields}
        return Answer(
            payload={"data": {"user": user}, "error": {"code": "ok", "message": "", "log_id": new_request_id()}}
        )

    # --- control endpoints ---

    def _control(self, method: str, path: str, raw_body: bytes) -> Answer:
        action = path[len(CONTROL_PREFIX) :].strip("/")
        body = _parse_json(raw_body) if raw_body else {}
        if body is _NOT_JSON or not isinstance(body, dict):
            return Answer(http_status=400, payload={"error": "body must be a JSON object"})
        handler = self._control_routes().get((method, action))
        if handler is None:
            return Answer(
                http_status=404,
                payload={"error": f"no control endpoint {method} {path}"},
            )
        try:
            return Answer(payload=handler(body))
        except (KeyError, TypeError, ValueError) as exc:
            return Answer(http_status=400, payload={"error": str(exc)})

    def _control_routes(self) -> dict:
        return {
            ("GET", "events"): lambda body: self.accepted_events(),
            ("GET", "requests"): lambda body: self.requests,
            ("GET", "audiences"): lambda body: self.audiences(),
            ("POST", "fail"): self._control_fail,
            ("POST", "latency"): self._control_latency,
            ("POST", "reset"): self._control_reset,
            ("POST", "pixels"): self._control_pixels,
            ("POST", "login/clients"): self._control_login_client,
            ("POST", "login/user"): self._control_login_user,
            ("POST", "login/deny"): self._control_login_deny,
        }

    def _control_fail(self, body: dict) -> dict:
        self.fail_next(int(body.get("n", 1)), body["mode"])
        return {"ok": True}

    def _control_latency(self, body: dict) -> dict:
        self.set_latency(float(body["seconds"]))
        return {"ok": True}

    def _control_reset(self, body: dict) -> dict:
        self.reset()
        return {"ok": True}

    def _control_pixels(self, body: dict) -> dict:
        self.add_pixel(body["pixel_code"], body["access_token"])
        return {"ok": True}

    def _control_login_client(self, body: dict) -> dict:
        self.add_login_client(body["client_key"], body["client_secret"], body["redirect_uri"])
        return {"ok": True}

    def _control_login_user(self, body: dict) -> dict:
        self.set_login_user(**body)
        return {"ok": True}

    def _control_login_deny(self, body: dict) -> dict:
        self.deny_next_login(int(body.get("n", 1)))
        return {"ok": True}


def _redirect(url: str, params: dict) -> Answer:
    separator = "&" if urlsplit(url).query else "?"
    return Answer(http_status=302, raw=b"", headers={"Location": f"{url}{separator}{urlencode(params)}"})


def _login_error_page(error: str, description: str) -> Answer:
    return Answer(http_status=400, raw=f"<html><body>{error}: {description}</body></html>".encode())


def _oauth_error(error: str, description: str) -> Answer:
    # TikTok's OAuth error struct. The docs give no HTTP status for it; 400 is OAuth 2.0's (RFC 6749 5.2),
    # and the tracker's client reads the `error` field whatever the status.
    return Answer(
        http_status=400, payload={"error": error, "error_description": description, "log_id": new_request_id()}
    )


def _user_info_error(http_status: int, code: str, message: str) -> Answer:
    error = {"code": code, "message": message, "log_id": new_request_id()}
    return Answer(http_status=http_status, payload={"data": {}, "error": error})


def _check_audience_name(name) -> None:
    _check(_is_nonempty_str(name), "custom_audience_name", "must be a non-empty string")
    _check(
        len(name) <= MAX_AUDIENCE_NAME,
        "custom_audience_name",
        f"at most {MAX_AUDIENCE_NAME} characters",
    )


def _check_row(row, where: str, width: int) -> None:
    _check(isinstance(row, list), where, "must be a list")
    _check(len(row) == width, where, f"has {len(row)} entries, id_schema has {width}")
    _check(any(row), where, "has no id at all")


def _validated_id_schema(id_schema) -> list[str]:
    _check(
        isinstance(id_schema, list) and id_schema != [],
        "id_schema",
        "must be a non-empty list",
    )
    for id_type in id_schema:
        _check(
            id_type in ID_SCHEMA_DIGEST_LENGTH,
            "id_schema",
            f"unknown id type {id_type!r}",
        )
    _check(len(set(id_schema)) == len(id_schema), "id_schema", "has duplicates")
    return id_schema


def _audience_size(audience: dict) -> int:
    # Rows can carry several ids of one person, so the largest id type is the best estimate.
    return max((len(ids) for ids in audience["members"].values()), default=0)


def _audience_view(audience: dict) -> dict:
    view = copy.deepcopy({k: v for k, v in audience.items() if k != "members"})
    view["members"] = {id_type: sorted(ids) for id_type, ids in audience["members"].items()}
    view["size"] = _audience_size(audience)
    return view


_NOT_JSON = object()


def _parse_json(raw: bytes):
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return _NOT_JSON


# --- HTTP plumbing -------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog of 5 drops connections in a burst of parallel senders
    allow_reuse_address = True

    def __init__(self, address, fake: FakeTikTok):
        super().__init__(address, _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeTikTok/1.0"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        arrived = time.monotonic()  # request line and headers read, body not yet
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        headers = {name: self.headers[name] for name in INTERESTING_HEADERS if name in self.headers}
        target = urlsplit(self.path)
        answer = self.server.fake.handle(method, target.path, headers, raw_body, query=target.query, arrived=arrived)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._reply(answer)  # fails only when the client gave up first (timeouts)

    def _reply(self, answer: Answer) -> None:
        if answer.drop:
            self.close_connection = True
            return
        content = answer.raw if answer.raw is not None else json.dumps(answer.payload).encode()
        self.send_response(answer.http_status)
        content_type = "application/json" if answer.raw is None else "text/html"
        self.send_header("Content-Type", content_type)
        for name, value in (answer.headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def log_message(self, format: str, *args) -> None:
        if self.server.fake.verbose:
            super().log_message(format, *args)


# --- command line --------------------------------------------------------------------


def build_arg_parser(
    parser: argparse.ArgumentParser | None = None,
) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(description="Fake TikTok Business API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9555)
    parser.add_argument("--rate-limit", type=int, default=10, help="requests per second, 0 = unlimited")
    parser.add_argument(
        "--timeout-delay",
        type=float,
        default=5.0,
        help="seconds the timeout fault holds",
    )
    parser.add_argument(
        "--pixel",
        action="append",
        default=[],
        metavar="PIXEL:TOKEN",
        help="register a pixel and its token",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")
    return parser


def fake_from_options(options: dict) -> FakeTikTok:
    fake = FakeTikTok(
        host=options["host"],
        port=options["port"],
        rate_limit=options["rate_limit"],
        timeout_delay=options["timeout_delay"],
        verbose=options["verbose"],
    )
    for spec in options["pixel"]:
        pixel_code, _, token = spec.partition(":")
        fake.add_pixel(pixel_code, token)
    return fake


def main(argv: list[str] | None = None) -> int:
    options = vars(build_arg_parser().parse_args(argv))
    fake_from_options(options).serve_forever(announce=lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
