"""Access tokens are encrypted at rest with Fernet (AES-128-CBC + HMAC) from `cryptography`.

TIKTOK_TOKEN_KEYS holds one or more Fernet keys, newest first: the first encrypts, all decrypt,
so a key can be rotated without losing the tokens stored under the old one.
"""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


@lru_cache(maxsize=1)
def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in settings.TIKTOK_TOKEN_KEYS])


def encrypt_token(token: str) -> str:
    return _fernet().encrypt(token.encode()).decode()


def decrypt_token(ciphertext: str) -> str:
    try:
        return _fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("The access token cannot be decrypted with TIKTOK_TOKEN_KEYS.") from exc


def mask_token(token: str) -> str:
    """What may be shown back: the last four characters only."""
    return f"…{token[-4:]}" if len(token) > 8 else "…"
