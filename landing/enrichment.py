"""What the tracker learns about a visitor from the request alone: IP, device, place, bot or not.

Everything that can be done once is done once: the GeoIP reader is opened at first use and kept,
user-agent parsing is cached, the trusted proxy networks are parsed once and the peer's trust is
remembered, each address is parsed once.
"""

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import maxminddb
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


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _in_trusted(ip) -> bool:
    return any(ip in network for network in _trusted_networks())


# The direct peer is nearly always the same few proxies: remember the answer per address.
@lru_cache(maxsize=256)
def _peer_is_trusted(peer: str) -> bool:
    ip = _parse_ip(peer)
    return ip is not None and _in_trusted(ip)


def client_ip(meta: dict) -> str | None:
    """The visitor's IP: X-Forwarded-For is believed only when the direct peer is a trusted proxy.

    The chain is read right to left and the first address that is not a trusted proxy wins, so a
    visitor cannot pick their IP by sending the header themselves.
    """
    peer = meta.get("REMOTE_ADDR", "")
    if _peer_is_trusted(peer):
        forwarded = meta.get("HTTP_X_FORWARDED_FOR", "")
        for hop in reversed([part for part in forwarded.split(",") if part.strip()]):
            hop_ip = _parse_ip(hop)
            if hop_ip is None:
                break
            if not _in_trusted(hop_ip):
                return str(hop_ip)
    peer_ip = _parse_ip(peer)
    return None if peer_ip is None else str(peer_ip)


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
def _geoip_reader() -> maxminddb.Reader:
    # maxminddb (the reader under geoip2) hands back the raw record: building geoip2's model objects
    # for two fields was half the lookup's cost.
    return maxminddb.open_database(settings.GEOIP_PATH or _default_geoip_path())


# Small on purpose: a viral crowd is mostly new addresses, so a big cache would mostly hold memory
# (about 300 bytes an entry in every web worker); repeat visitors and the bot's own calls still hit it.
@lru_cache(maxsize=4096)
def locate(ip: str | None) -> Place:
    """Country (ISO code) and city (English name) of a City database; Place() when unknown."""
    if not ip:
        return Place()
    try:
        record = _geoip_reader().get(ip)
    except ValueError:
        return Place()
    if not record:
        return Place()
    country = (record.get("country") or {}).get("iso_code") or ""
    city = ((record.get("city") or {}).get("names") or {}).get("en") or ""
    return Place(country=country, city=city[:128])


def anonymize_ip(ip: str | None, mode: str) -> str | None:
    """IP_ANONYMIZATION: "none", or "truncate" = IPv4's last octet and IPv6's last 80 bits set to zero."""
    if not ip or mode == "none":
        return ip
    address = ipaddress.ip_address(ip)
    if address.version == 4:
        return str(ipaddress.IPv4Address(int(address) & 0xFFFFFF00))
    return str(ipaddress.IPv6Address(int(address) & ~((1 << 80) - 1)))
