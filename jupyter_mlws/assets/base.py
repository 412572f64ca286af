"""What every asset kind shares: names, versions, references and the registered-version entity."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from jupyter_mlws.errors import InvalidNameError, ReservedNameError, ValidationError

ASSET_KINDS: tuple[str, ...] = ("environment", "model", "data", "component", "datastore", "compute")

NAME_MAX = 255
VERSION_MAX = 64
DESCRIPTION_MAX = 10_000
TAGS_MAX = 100
TAG_KEY_MAX = 256
TAG_VALUE_MAX = 4096
#: Linux's limits: a whole path, and one of its parts, in bytes.
PATH_MAX = 4096
PATH_PART_MAX = 255
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")

#: Curated environments own this prefix, compared without regard to case.
RESERVED_PREFIX = "MLWS-"
#: Azure's curated environment names, resolved from the built-in ``azureml`` registry.
AZUREML_PREFIX = "AzureML-"
#: Every prefix refused as a user's environment name (Azure refuses ``AzureML-`` too).
RESERVED_PREFIXES: tuple[str, ...] = (RESERVED_PREFIX, AZUREML_PREFIX)
#: The asset kinds a registry holds, by the plural an ``azureml://registries/`` URI uses.
REGISTRY_KINDS: dict[str, str] = {
    "environments": "environment", "models": "model", "components": "component"}
REGISTRY_URI_PREFIX = "azureml://registries/"


def validate_name(name: object, *, what: str = "name") -> str:
    """Return ``name`` if it is a safe asset name, else raise :class:`InvalidNameError`."""
    if not isinstance(name, str) or not name:
        raise InvalidNameError(f"The {what} must be a non-empty string.")
    if len(name) > NAME_MAX:
        raise InvalidNameError(f"The {what} {name[:40]!r}... is longer than {NAME_MAX} characters.")
    if "/" in name or "\\" in name or ".." in name or not _NAME_RE.match(name):
        raise InvalidNameError(
            f"The {what} {name!r} is not allowed.",
            hint="Use letters, digits, '-', '_' and '.', starting with a letter or digit, "
            "without '..' or path separators.",
        )
    return name


def validate_version(version: object) -> str:
    """Return ``version`` as a string if it is a safe version label."""
    if isinstance(version, bool) or not isinstance(version, (str, int)):
        raise InvalidNameError(f"The version {version!r} must be a string or an integer.")
    text = str(version)
    if text == "latest":
        raise InvalidNameError(
            "'latest' is a label, not a version.", hint="Leave the version out to get the next one."
        )
    if len(text) > VERSION_MAX or ".." in text or not _VERSION_RE.match(text):
        raise InvalidNameError(
            f"The version {text!r} is not allowed.",
            hint=f"Use up to {VERSION_MAX} letters, digits, '-', '_' and '.'.",
        )
    return text


def validate_tags(value: object) -> dict[str, str]:
    """Tags as text: a mapping of at most :data:`TAGS_MAX` text keys to text values. Numbers and
    booleans are written as text; lists, mappings and NUL characters are refused."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("tags must be a mapping of names to values")
    if len(value) > TAGS_MAX:
        raise ValueError(f"at most {TAGS_MAX} tags are allowed, got {len(value)}")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key or len(key) > TAG_KEY_MAX or "\x00" in key:
            raise ValueError(
                f"tag names must be text of 1 to {TAG_KEY_MAX} characters without NUL, "
                f"got {_brief(key)}"
            )
        if item is None:
            text = ""
        elif isinstance(item, (str, int, float)):  # bool is an int
            text = str(item)
        else:
            raise ValueError(f"tag {_brief(key)} must be text, not a {_kind_of(item)}")
        if len(text) > TAG_VALUE_MAX or "\x00" in text:
            raise ValueError(
                f"tag {_brief(key)} must be at most {TAG_VALUE_MAX} characters without NUL"
            )
        out[key] = text
    return out


def validate_description(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"the description must be text, not a {_kind_of(value)}")
    if len(value) > DESCRIPTION_MAX or "\x00" in value:
        raise ValueError(f"the description must be at most {DESCRIPTION_MAX} characters "
                         "without NUL")
    return value


def validate_path_text(value: str, *, what: str = "path") -> str:
    """A local path or a URL as text: bounded in length, without NUL, without credentials."""
    if "\x00" in value:
        raise ValueError(f"the {what} contains a NUL character")
    if len(value.encode("utf-8", "surrogatepass")) > PATH_MAX:
        raise ValueError(f"the {what} is longer than {PATH_MAX} bytes")
    if "://" in value:
        refuse_userinfo(value, what=what)
    elif any(len(part.encode("utf-8", "surrogatepass")) > PATH_PART_MAX
             for part in value.split("/")):
        raise ValueError(f"a folder or file name in the {what} is longer than {PATH_PART_MAX} "
                         "bytes")
    return value


def refuse_userinfo(url: str, *, what: str = "URL") -> None:
    """Refuse ``scheme://user:password@host/...``; the message never repeats the user info."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        raise ValueError(f"the {what} is not a valid URL") from None
    if "@" not in parts.netloc:
        return
    host = parts.netloc.rsplit("@", 1)[1]
    raise ValueError(
        f"the {what} {parts.scheme}://{host}{_brief_path(parts.path)} has a user name or password "
        "in it (before '@'); credentials in a URL would be stored and shown with it. Give the "
        "URL without them and pass the credentials separately: under 'credentials:' of a "
        "datastore (YAML), credentials={...} in Python, or the CLI's credential options; "
        "data then refers to the datastore as azureml://datastores/<name>/paths/<path>"
    )


def _brief_path(path: str) -> str:
    return path if len(path) <= 60 else path[:57] + "..."


def _brief(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _kind_of(value: object) -> str:
    if isinstance(value, dict):
        return "mapping"
    return "list" if isinstance(value, list) else type(value).__name__


def is_reserved(name: str) -> bool:
    """Whether ``name`` starts with ``MLWS-`` or ``AzureML-`` (in any case)."""
    upper = name.upper()
    return any(upper.startswith(p.upper()) for p in RESERVED_PREFIXES)


def is_azureml_curated(name: str) -> bool:
    """Whether ``name`` is one of Azure's curated names (``AzureML-...``, in any case)."""
    return name.upper().startswith(AZUREML_PREFIX.upper())


def refuse_reserved(name: str) -> None:
    if is_reserved(name):
        prefix = RESERVED_PREFIX if name.upper().startswith(RESERVED_PREFIX.upper()) \
            else AZUREML_PREFIX
        example = "MLWS-python-3.11-minimal" if prefix == RESERVED_PREFIX \
            else "AzureML-sklearn-1.5"
        raise ReservedNameError(
            f"Names starting with '{prefix}' are reserved for curated environments "
            f"('{RESERVED_PREFIX}' and '{AZUREML_PREFIX}', in any case), so {name!r} cannot be "
            "registered.",
            hint="Choose a name of your own; to start from a curated environment, copy it: "
            f"`mlws env create --from {example} --name mine`.",
        )


class AssetRef(BaseModel):
    """A parsed reference such as ``azureml:name:3``, ``mlws:name@latest`` or ``name``."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str | None = None
    label: str | None = None

    def __str__(self) -> str:
        if self.version:
            return f"{self.name}:{self.version}"
        return f"{self.name}@{self.label or 'latest'}"


_REF_PREFIXES = ("azureml:", "mlws:")


def parse_ref(text: str) -> AssetRef:
    """Parse ``[azureml:|mlws:]NAME[:VERSION|@LABEL]``.

    ``azureml://`` and ``mlws://`` URIs are paths, not references: they are refused here.
    """
    raw = text.strip()
    for prefix in _REF_PREFIXES:
        if raw.startswith(prefix) and not raw.startswith(prefix + "//"):
            raw = raw[len(prefix) :]
            break
    if "://" in raw:
        raise ValidationError(f"{text!r} is a URI, not an asset reference.")
    if "@" in raw:
        name, label = raw.rsplit("@", 1)
        if label != "latest":
            raise ValidationError(f"Unknown label {label!r} in {text!r}.", hint="Use '@latest'.")
        return AssetRef(name=validate_name(name), label=label)
    if ":" in raw:
        name, version = raw.split(":", 1)
        return AssetRef(name=validate_name(name), version=validate_version(version))
    return AssetRef(name=validate_name(raw))


def looks_like_ref(text: str) -> bool:
    return any(text.startswith(p) and not text.startswith(p + "//") for p in _REF_PREFIXES)


class RegistryRef(BaseModel):
    """An asset of a registry: ``azureml://registries/<registry>/<kind>s/<name>/versions/<v>``
    (or ``/labels/latest``), or an Azure curated name (``azureml:AzureML-<name>@latest``),
    which is the built-in ``azureml`` registry's."""

    model_config = ConfigDict(frozen=True)

    registry: str
    kind: str
    name: str
    version: str | None = None

    @property
    def uri(self) -> str:
        plural = next(k for k, v in REGISTRY_KINDS.items() if v == self.kind)
        tail = f"versions/{self.version}" if self.version else "labels/latest"
        return f"{REGISTRY_URI_PREFIX}{self.registry}/{plural}/{self.name}/{tail}"

    def __str__(self) -> str:
        return self.uri


def is_registry_uri(text: object) -> bool:
    return isinstance(text, str) and text.strip().lower().startswith(REGISTRY_URI_PREFIX)


def parse_registry_ref(text: str, *, kind: str | None = None) -> RegistryRef | None:
    """``text`` as a :class:`RegistryRef`, or ``None`` when it names no registry.

    ``kind`` is the kind the caller expects; a URI of another kind is refused. Azure's curated
    names (``AzureML-...``) are registry references for environments only.
    """
    raw = text.strip()
    if is_registry_uri(raw):
        return _parse_registry_uri(raw, text, kind)
    if kind != "environment":
        return None
    body = raw[len("azureml:"):] if raw.startswith("azureml:") else raw
    if not is_azureml_curated(body) or "://" in body:
        return None
    ref = parse_ref(body)
    return RegistryRef(registry="azureml", kind="environment", name=ref.name,
                       version=ref.version)


def _parse_registry_uri(raw: str, text: str, kind: str | None) -> RegistryRef:
    parts = raw[len(REGISTRY_URI_PREFIX):].rstrip("/").split("/")
    forms = ("azureml://registries/<registry>/environments|models|components/<name>/"
             "versions/<version> or .../labels/latest")
    if len(parts) not in (3, 5) or (len(parts) == 5 and parts[3] not in ("versions", "labels")):
        raise ValidationError(f"{text!r} is not a registry reference.", hint=f"Write {forms}.")
    registry, plural, name = parts[:3]
    found = REGISTRY_KINDS.get(plural)
    if found is None:
        raise ValidationError(
            f"{text!r} names {plural!r} in a registry; registries hold environments, models "
            "and components.", hint=f"Write {forms}.")
    if kind is not None and found != kind:
        raise ValidationError(f"{text!r} is a {found}, where a {kind} is expected.",
                              hint=f"Give a {kind} of the registry ({forms}).")
    version = None
    if len(parts) == 5 and parts[3] == "labels":
        if parts[4] != "latest":
            raise ValidationError(f"Unknown label {parts[4]!r} in {text!r}.",
                                  hint="The only label is 'latest'.")
    elif len(parts) == 5:
        version = validate_version(parts[4])
    return RegistryRef(registry=validate_name(registry, what="registry name"), kind=found,
                       name=validate_name(name), version=version)


class SpecModel(BaseModel):
    """Base of YAML specs: unknown fields are errors, except the Azure ones we accept and ignore."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    #: Azure ML fields a spec may carry that have no meaning here; accepted and dropped.
    ignored_fields: ClassVar[frozenset[str]] = frozenset()


class AssetSpec(SpecModel):
    """Fields every registrable asset spec has."""

    schema_: str | None = Field(default=None, alias="$schema", exclude=True)
    name: str
    version: str | None = None
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return validate_name(value)

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: object) -> str | None:
        return None if value is None else validate_version(value)

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: object) -> dict[str, str]:
        return validate_tags(value)

    @field_validator("description", mode="before")
    @classmethod
    def _description(cls, value: object) -> str | None:
        return validate_description(value)

    def content(self) -> dict[str, Any]:
        """The immutable content of a version: everything but name, version, description, tags."""
        return self.model_dump(
            mode="json", exclude={"name", "version", "description", "tags"}, exclude_none=True
        )


class Asset(BaseModel):
    """A registered, immutable version of an asset, with its mutable metadata."""

    model_config = ConfigDict(extra="allow")

    kind: str
    name: str
    version: str
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    archived: bool = False
    hidden: bool = False
    curated: bool = False
    created_at: datetime
    created_by: str | None = None
    content_hash: str
    #: The job that produced this version, when it came from a job output.
    job_id: str | None = None
    spec: dict[str, Any] = Field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def public_dict(self) -> dict[str, Any]:
        """A JSON-ready view for the CLI's ``-o json`` and the REST API."""
        data = self.model_dump(mode="json")
        data.update(self.extra_fields())
        return data

    def extra_fields(self) -> dict[str, Any]:
        """Kind-specific derived fields (e.g. the hash of an environment)."""
        return {}
