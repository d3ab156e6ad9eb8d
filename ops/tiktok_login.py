"""TikTok Login Kit v2 for the web: the authorize URL, code → access token, the user's basic info.

Endpoints and parameters as TikTok documents them:
- authorize: GET https://www.tiktok.com/v2/auth/authorize/ with client_key, scope (comma-separated),
  response_type=code, redirect_uri, state; TikTok redirects back with code, scopes and state, or with
  error and error_description (https://developers.tiktok.com/doc/login-kit-web).
- token: POST {api}/v2/oauth/token/, form-encoded client_key, client_secret, code,
  grant_type=authorization_code, redirect_uri; answers open_id, scope, access_token, expires_in,
  refresh_token, refresh_expires_in, token_type, or error, error_description, log_id
  (https://developers.tiktok.com/doc/oauth-user-access-token-management,
  https://developers.tiktok.com/doc/oauth-error-handling).
- user info: GET {api}/v2/user/info/?fields=open_id,union_id,avatar_url,display_name with
  "Authorization: Bearer <access_token>"; answers {"data": {"user": {...}}, "error": {"code": "ok", ...}}
  (https://developers.tiktok.com/doc/tiktok-api-v2-get-user-info).

The `state` is ours: django.core.signing over the Telegram user id, valid TIKTOK_LOGIN_STATE_MAX_AGE_S,
so nobody can make a link that attaches a TikTok account to someone else's Telegram id.
"""

import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

import requests
from django.conf import settings
from django.core import signing

TOKEN_PATH = "/v2/oauth/token/"
USER_INFO_PATH = "/v2/user/info/"
USER_FIELDS = ("open_id", "union_id", "avatar_url", "display_name")  # all in the user.info.basic scope
STATE_SALT = "ops.tiktok_login.state"


class LoginKitError(Exception):
    """TikTok refused (error code and description as it sent them) or could not be reached."""

    def __init__(self, error: str, description: str = "", log_id: str = ""):
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description
        self.log_id = log_id


class BadState(Exception):
    """The state is not ours, was altered, or is older than TIKTOK_LOGIN_STATE_MAX_AGE_S."""


def login_configured() -> bool:
    return bool(settings.TIKTOK_LOGIN_CLIENT_KEY and settings.TIKTOK_LOGIN_CLIENT_SECRET)


def redirect_uri() -> str:
    return settings.TIKTOK_LOGIN_REDIRECT_URI or f"{settings.PUBLIC_BASE_URL}/tiktok/callback"


def state_for(telegram_user_id: int) -> str:
    # The nonce makes every link different, so one leaked link says nothing about the next.
    return signing.dumps({"tg": telegram_user_id, "n": secrets.token_urlsafe(6)}, salt=STATE_SALT)


def telegram_user_from_state(state: str) -> int:
    try:
        payload = signing.loads(state, salt=STATE_SALT, max_age=settings.TIKTOK_LOGIN_STATE_MAX_AGE_S)
    except signing.BadSignature as exc:  # SignatureExpired is a BadSignature too
        raise BadState(str(exc)) from exc
    telegram_user_id = payload.get("tg") if isinstance(payload, dict) else None
    if not isinstance(telegram_user_id, int) or isinstance(telegram_user_id, bool) or telegram_user_id < 1:
        raise BadState("no Telegram user in the state")
    return telegram_user_id


def start_url(telegram_user_id: int) -> str:
    """The link the bot sends: our /tiktok/oauth/start with a signed state."""
    return f"{settings.PUBLIC_BASE_URL}/tiktok/oauth/start?{urlencode({'state': state_for(telegram_user_id)})}"


def authorize_url(state: str) -> str:
    query = {
        "client_key": settings.TIKTOK_LOGIN_CLIENT_KEY,
        "scope": settings.TIKTOK_LOGIN_SCOPES,
        "response_type": "code",
        "redirect_uri": redirect_uri(),
        "state": state,
    }
    return f"{settings.TIKTOK_LOGIN_AUTH_URL}?{urlencode(query)}"


@dataclass(frozen=True)
class TokenGrant:
    open_id: str
    scope: str
    access_token: str


@dataclass(frozen=True)
class TikTokUser:
    open_id: str
    union_id: str
    display_name: str
    avatar_url: str


class LoginKitClient:
    def __init__(self, *, base_url: str, client_key: str, client_secret: str, timeout: float = 10.0, session=None):
        self.base_url = base_url.rstrip("/")
        self.client_key = client_key
        self.client_secret = client_secret
        self.timeout = timeout
        self.session = session or requests.Session()

    @classmethod
    def from_settings(cls) -> "LoginKitClient":
        return cls(
            base_url=settings.TIKTOK_LOGIN_API_BASE_URL,
            client_key=settings.TIKTOK_LOGIN_CLIENT_KEY,
            client_secret=settings.TIKTOK_LOGIN_CLIENT_SECRET,
            timeout=settings.TIKTOK_HTTP_TIMEOUT,
        )

    def exchange_code(self, *, code: str, redirect_uri: str) -> TokenGrant:
        form = {
            "client_key": self.client_key,
            "client_secret": self.client_secret,
            "code": code,
            "grant_type": "authorization_code",
            "redirect_uri": redirect_uri,
        }
        body = self._json("POST", TOKEN_PATH, data=form, headers={"Content-Type": "application/x-www-form-urlencoded"})
        # OAuth errors come as {"error", "error_description", "log_id"}; not every one with a 4xx status.
        if body.get("error") or not body.get("access_token") or not body.get("open_id"):
            raise LoginKitError(
                str(body.get("error") or "invalid_response"), str(body.get("error_description", "")), _log_id(body)
            )
        return TokenGrant(
            open_id=str(body["open_id"]), scope=str(body.get("scope", "")), access_token=body["access_token"]
        )

    def user_info(self, *, access_token: str) -> TikTokUser:
        body = self._json(
            "GET",
            USER_INFO_PATH,
            params={"fields": ",".join(USER_FIELDS)},
            headers={"Authorization": f"Bearer {access_token}"},
        )
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        user = (body.get("data") or {}).get("user") if isinstance(body.get("data"), dict) else None
        if error.get("code", "ok") != "ok" or not isinstance(user, dict) or not user.get("open_id"):
            raise LoginKitError(
                str(error.get("code") or "invalid_response"), str(error.get("message", "")), _log_id(error)
            )
        return TikTokUser(
            open_id=str(user["open_id"]),
            union_id=str(user.get("union_id") or ""),
            display_name=str(user.get("display_name") or "")[:200],
            avatar_url=str(user.get("avatar_url") or "")[:1000],
        )

    def _json(self, method: str, path: str, **kwargs) -> dict:
        try:
            response = self.session.request(method, self.base_url + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise LoginKitError("unreachable", type(exc).__name__) from exc
        try:
            body = response.json()
        except ValueError:
            raise LoginKitError("invalid_response", f"HTTP {response.status_code}, not JSON") from None
        if not isinstance(body, dict):
            raise LoginKitError("invalid_response", f"HTTP {response.status_code}, not a JSON object")
        return body


def _log_id(body: dict) -> str:
    return str(body.get("log_id", ""))
