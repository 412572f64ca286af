"""Datastores: where data lives. Credentials are kept apart and never shown."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from jupyter_mlws.assets.base import Asset, AssetSpec, validate_path_text

DatastoreType = Literal["local", "fsspec"]
MASK = "***"
#: Azure ML datastore types accepted in YAML and what they become.
AZURE_TYPES = {"azure_blob": "abfs", "azure_data_lake_gen2": "abfs", "azure_file": "az"}


class DatastoreSpec(AssetSpec):
    """``local``: a folder. ``fsspec``: a URL such as ``s3://bucket/prefix``."""

    ignored_fields: ClassVar[frozenset[str]] = frozenset({"endpoint", "protocol"})

    type: DatastoreType = "local"
    path: str | None = None
    url: str | None = None
    storage_options: dict[str, Any] = Field(default_factory=dict)
    credentials: dict[str, SecretStr] = Field(default_factory=dict, exclude=True)

    @field_validator("credentials", mode="before")
    @classmethod
    def _creds(cls, value: object) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValueError("credentials must be a mapping")
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str) or not key:
                raise ValueError("credential names must be text")
            if isinstance(item, SecretStr):
                item = item.get_secret_value()
            if isinstance(item, bool) or not isinstance(item, (str, int)):
                # never the value itself: this message may be printed
                raise ValueError(f"the credential {key!r} must be text")
            out[key] = str(item)
        return out

    @field_validator("path", "url")
    @classmethod
    def _location(cls, value: str | None) -> str | None:
        return None if value is None else validate_path_text(value, what="datastore location")

    @field_validator("storage_options")
    @classmethod
    def _options(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_options(value, "storage_options")  # nested too: s3fs takes client_kwargs
        return value

    @model_validator(mode="before")
    @classmethod
    def _azure(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("type"), str) and (
            data["type"] in AZURE_TYPES
        ):
            data = dict(data)
            proto = AZURE_TYPES[data.pop("type")]
            account = data.pop("account_name", None)
            container = data.pop("container_name", None) or data.pop("filesystem", None)
            data.pop("file_share_name", None)
            if not (account and container):
                raise ValueError("an Azure datastore needs account_name and container_name")
            data["type"] = "fsspec"
            if not (isinstance(account, str) and isinstance(container, str)):
                raise ValueError("account_name and container_name must be text")
            data["url"] = f"{proto}://{container}"
            options = data.get("storage_options")
            data["storage_options"] = {**(options if isinstance(options, dict) else {}),
                                       "account_name": account}
        return data

    @model_validator(mode="after")
    def _where(self) -> DatastoreSpec:
        if self.type == "local" and not self.path:
            raise ValueError("a local datastore needs 'path' (a folder)")
        if self.type == "fsspec" and (not self.url or "://" not in self.url):
            raise ValueError("an fsspec datastore needs 'url', e.g. s3://bucket/prefix")
        return self

    def secret(self) -> dict[str, str]:
        return {k: v.get_secret_value() for k, v in self.credentials.items()}


class Datastore(Asset):
    """A registered datastore; the credential *names* are listed, their values masked."""

    @property
    def type(self) -> str:
        return str(self.spec.get("type", "local"))

    @property
    def credential_names(self) -> list[str]:
        return list(self.spec.get("credential_names", []))

    def public_dict(self) -> dict[str, Any]:
        data = super().public_dict()
        if isinstance(data.get("spec", {}).get("url"), str):
            data["spec"]["url"] = without_userinfo(data["spec"]["url"])
        return data

    def extra_fields(self) -> dict[str, Any]:
        location = self.spec.get("url") or self.spec.get("path")
        return {
            "type": self.type,
            "location": without_userinfo(location) if isinstance(location, str) else location,
            "credentials": {k: MASK for k in self.credential_names},
        }


_SECRETISH = ("key", "secret", "token", "password", "sas")


def _check_options(value: Any, where: str) -> None:
    """Refuse credentials anywhere in storage options (a secret-like name, or a URL with user
    info); the message names where, never the value."""
    if isinstance(value, dict):
        for key, item in value.items():
            name = str(key)
            if any(s in name.lower() for s in _SECRETISH) and name != "account_name":
                raise ValueError(
                    f"{where}.{name} looks like a credential: put it under "
                    "'credentials' so it is kept secret"
                )
            _check_options(item, f"{where}.{name}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_options(item, f"{where}[{i}]")
    elif isinstance(value, str) and "://" in value:
        validate_path_text(value, what=f"storage option {where.partition('.')[2]!r}")


def without_userinfo(url: str) -> str:
    """``url`` with any ``user:password@`` masked (a URL stored before such URLs were refused)."""
    head, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    if "@" not in netloc:
        return url
    return f"{head}://{MASK}@{netloc.rsplit('@', 1)[1]}{slash}{path}"
