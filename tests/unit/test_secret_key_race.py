"""The secret key file made by several threads at once (a Jupyter server answering concurrent
first requests): every caller gets the one key that is on disk, and none fails."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from jupyter_mlws.crypto import ENV_SECRET_KEY, SecretBox, key_file

THREADS = 8


def _load_at_once() -> tuple[list[bytes], list[BaseException]]:
    """``SecretBox.load(create=True)`` in THREADS threads released together."""
    keys: list[bytes] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def make() -> None:
        barrier.wait()
        try:
            keys.append(SecretBox.load(create=True).keys[0])
        except BaseException as exc:  # noqa: BLE001 - collected and asserted by the caller
            errors.append(exc)

    threads = [threading.Thread(target=make) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return keys, errors


def test_threads_creating_the_key_at_once_agree_on_one_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_SECRET_KEY, raising=False)
    for round_ in range(20):
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / f"config-{round_}"))
        keys, errors = _load_at_once()
        assert errors == []
        assert set(keys) == {key_file().read_bytes().strip()}
        assert [p.name for p in key_file().parent.iterdir()] == ["secret.key"]
