"""Secrets at rest: credentials are Fernet-encrypted with a key that lives outside every store.

The key comes from ``$MLWS_SECRET_KEY`` (one key, or several separated by commas: the first
encrypts, all decrypt, so keys can be rotated), else from a 0600 file in the user's config folder
(``$XDG_CONFIG_HOME/mlws/secret.key``, by default ``~/.config/mlws/secret.key``), made on first
need. The workspace and its database never hold the key, so a copied ``mlws.db`` reveals nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from jupyter_mlws.errors import SecretKeyError

ENV_SECRET_KEY = "MLWS_SECRET_KEY"
#: The marker of an encrypted secret as the store keeps it.
FORMAT = "fernet-v1"
_GENERATE = (
    "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)


def without_secret_key(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's environment) without the workspace's secret key: for
    processes that run code the workspace did not write (package builds, a venv's ``.pth``
    files, jobs)."""
    return {k: v for k, v in (os.environ if env is None else env).items()
            if k != ENV_SECRET_KEY}


def key_file() -> Path:
    """Where the key is kept when ``$MLWS_SECRET_KEY`` is not set."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "mlws" / "secret.key"


def key_id(key: bytes) -> str:
    """A short public name of a key (a hash: it does not reveal the key)."""
    return hashlib.sha256(b"mlws-secret-key-id:" + key.strip()).hexdigest()[:12]


def is_encrypted(stored: Any) -> bool:
    return isinstance(stored, dict) and stored.get("format") == FORMAT and "token" in stored


class SecretBox:
    """Encrypts and decrypts secret mappings with the user's key(s)."""

    def __init__(self, keys: list[bytes], source: str) -> None:
        self.keys = keys
        self.source = source
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    @property
    def key_id(self) -> str:
        return key_id(self.keys[0])

    @classmethod
    def load(cls, *, create: bool) -> SecretBox:
        """The box for the configured key; make the key file when ``create`` and none exists."""
        env = os.environ.get(ENV_SECRET_KEY)
        if env:
            keys = [k.strip().encode() for k in env.split(",") if k.strip()]
            for k in keys:
                _check_key(k, f"${ENV_SECRET_KEY}")
            return cls(keys, f"${ENV_SECRET_KEY}")
        path = key_file()
        if not path.exists():
            if not create:
                raise SecretKeyError(
                    f"No secret key is set: neither ${ENV_SECRET_KEY} nor the key file {path} "
                    "exists.",
                    hint=f"Set ${ENV_SECRET_KEY} to the key these secrets were encrypted with, "
                    f"or restore {path} (mode 0600).",
                )
            _create_key_file(path)
        return cls([_read_key_file(path)], str(path))

    def encrypt(self, secret: dict[str, str]) -> dict[str, str]:
        """The stored form of ``secret``: a token plus the id of the key that made it."""
        token = self._fernet.encrypt(json.dumps(secret, sort_keys=True).encode())
        return {"format": FORMAT, "key_id": self.key_id, "token": token.decode()}

    def decrypt(self, stored: dict[str, Any], *, what: str) -> dict[str, str]:
        """The secret mapping of ``stored``; :class:`SecretKeyError` when no key opens it."""
        try:
            plain = self._fernet.decrypt(str(stored["token"]).encode())
        except InvalidToken:
            raise SecretKeyError(
                f"The credentials of {what} were encrypted with the key {stored.get('key_id')!r}, "
                f"which is not the key in use (key {self.key_id!r}, from {self.source}).",
                hint=f"Set ${ENV_SECRET_KEY} to the key they were encrypted with (several keys "
                "may be given, separated by commas), or register the credentials again.",
            ) from None
        data = json.loads(plain)
        return {str(k): str(v) for k, v in data.items()}


def _check_key(key: bytes, source: str) -> None:
    try:
        Fernet(key)
    except (ValueError, TypeError):
        raise SecretKeyError(
            f"The secret key from {source} is not a valid Fernet key (32 url-safe base64 bytes).",
            hint=f"Generate one with: {_GENERATE}",
        ) from None


def _read_key_file(path: Path) -> bytes:
    try:
        info = path.stat()
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretKeyError(
                f"The secret key file {path} can be read by other users.",
                hint=f"Make it private: chmod 600 {path}",
            )
        key = path.read_bytes().strip()
    except OSError as exc:
        raise SecretKeyError(
            f"The secret key file {path} cannot be read: {exc.strerror}.",
            hint=f"Check the file, or set ${ENV_SECRET_KEY}.",
        ) from None
    _check_key(key, str(path))
    return key


def _create_key_file(path: Path) -> None:
    """Write a new key to ``path`` atomically: a concurrent creator's key wins, never a mix."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # a name of this call's own (threads share the pid), made exclusively: another
        # creator can never truncate or remove the file this one links into place
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # fails when another process made the key first: keep theirs
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    except OSError as exc:
        raise SecretKeyError(
            f"Cannot create the secret key file {path}: {exc.strerror}.",
            hint=f"Set ${ENV_SECRET_KEY} instead ({_GENERATE}), or XDG_CONFIG_HOME to a "
            "writable folder.",
        ) from None
