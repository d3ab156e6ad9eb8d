"""What the tracker learns about a visitor from the request alone: IP, device, place, bot or not.

Everything that can be done once is done once: the GeoIP reader is opened at first use and kept,
user-agent parsing is cached, the trusted proxy networks are parsed once.
"""

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import geoip2.database
import geoip2.errors
import user_agents
from django.conf import settings

# Link-preview fetchers, crawlers and HTTP tools. A match is stored as a bot hit, not a click.
# TikTok's and ByteDance's fetchers, Telegram's preview bot, Meta's, Google's, and CLI tools.
# Not "bytedance" alone: TikTok's own in-app browser says "BytedanceWebview", and its visitors are
# exactly the people this tracker counts.
BOT_UA_PATTERN = re.compile(
    r"bytespider|tiktok(?:bot|spider)|telegrambot|twitterbot|facebookexternalhit|facebot|"
    r"meta-externalagent|googlebot|google-inspectiontool|adsbot-google|mediapartners-google|"
    r"apis-google|googleother|bingbot|yandex(?:bot|images)|baiduspider|duckduckbot|slurp|applebot|"
    r"discordbot|whatsapp|slackbot|linkedinbot|skypeuripreview|vkshare|pinterestbot|redditbot|"
    r"headlesschrome|phantomjs|curl/|wget/|httpie|python-requests|python-urllib|aiohttp|go-http-client|"
    r"okhttp|java/|libwww-perl|node-fetch|axios/|postmanruntime|insomnia|\bbot\b|crawler|spider|scrapy",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Device:
    device_type: str  # mobile | tablet | desktop | bot | other
    os: str
    browser: str
    is_bot: bool


@dataclass(frozen=True)
class Place:
    country: str = ""
    city: str = ""


@lru_cache(maxsize=1)
def _trusted_networks():
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in settings.TRUSTED_PROXIES)


def _is_trusted(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in _trusted_networks())


def _valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_ip(meta: dict) -> str | None:
    """The visitor's IP: X-Forwarded-For is believed only when the direct peer is a trusted proxy.

    The chain is read right to left and the first address that is not a trusted proxy wins, so a
    visitor cannot pick their IP by sending the header themselves.
    """
    peer = meta.get("REMOTE_ADDR", "")
    if not _is_trusted(peer):
        return _valid_ip(peer)
    forwarded = meta.get("HTTP_X_FORWARDED_FOR", "")
    for hop in reversed([part for part in forwarded.split(",") if part.strip()]):
        hop_ip = _valid_ip(hop)
        if hop_ip is None:
            break
        if not _is_trusted(hop_ip):
            return hop_ip
    return _valid_ip(peer)


@lru_cache(maxsize=4096)
def parse_user_agent(user_agent: str) -> Device:
    if not user_agent.strip():
        return Device("bot", "", "", True)
    parsed = user_agents.parse(user_agent)
    is_bot = bool(BOT_UA_PATTERN.search(user_agent)) or parsed.is_bot
    if is_bot:
        device_type = "bot"
    elif parsed.is_tablet:
        device_type = "tablet"
    elif parsed.is_mobile:
        device_type = "mobile"
    elif parsed.is_pc:
        device_type = "desktop"
    else:
        device_type = "other"
    return Device(device_type, parsed.os.family[:64], parsed.browser.family[:64], is_bot)


def _default_geoip_path() -> str:
    import _maxminddb_geolite2  # the GeoLite2 City file shipped by the maxminddb-geolite2 package

    return str(Path(_maxminddb_geolite2.__file__).parent / "GeoLite2-City.mmdb")


@lru_cache(maxsize=1)
def _geoip_reader():
    path = settings.GEOIP_PATH or _default_geoip_path()
    return geoip2.database.Reader(path)


# Small on purpose: a viral crowd is mostly new addresses, so a big cache would mostly hold memory
# (about 300 bytes an entry in every web worker); repeat visitors and the bot's own calls still hit it.
@lru_cache(maxsize=4096)
def locate(ip: str | None) -> Place:
    if not ip:
        return Place()
    try:
        found = _geoip_reader().city(ip)
    except (geoip2.errors.AddressNotFoundError, ValueError):
        return Place()
    return Place(country=found.country.iso_code or "", city=(found.city.name or "")[:128])


def anonymize_ip(ip: str | None, mode: str) -> str | None:
    """IP_ANONYMIZATION: "none", or "truncate" = IPv4's last octet and IPv6's last 80 bits set to zero."""
    if not ip or mode == "none":
        return ip
    address = ipaddress.ip_address(ip)
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)
