"""Asset specs (what a user writes) and entities (what the workspace keeps), one module a kind."""

from __future__ import annotations

from jupyter_mlws.assets.base import ASSET_KINDS, Asset, AssetRef, AssetSpec, parse_ref
from jupyter_mlws.assets.component import Component, ComponentSpec
from jupyter_mlws.assets.compute import Compute, ComputeSpec
from jupyter_mlws.assets.data import Data, DataSpec
from jupyter_mlws.assets.datastore import Datastore, DatastoreSpec
from jupyter_mlws.assets.environment import Environment, EnvironmentSpec
from jupyter_mlws.assets.model import Model, ModelSpec

ENTITY_CLASSES: dict[str, type[Asset]] = {
    "environment": Environment,
    "model": Model,
    "data": Data,
    "component": Component,
    "datastore": Datastore,
    "compute": Compute,
}

SPEC_CLASSES: dict[str, type[AssetSpec]] = {
    "environment": EnvironmentSpec,
    "model": ModelSpec,
    "data": DataSpec,
    "component": ComponentSpec,
    "datastore": DatastoreSpec,
    "compute": ComputeSpec,
}


def entity_class(kind: str) -> type[Asset]:
    return ENTITY_CLASSES.get(kind, Asset)


__all__ = [
    "ASSET_KINDS",
    "Asset",
    "AssetRef",
    "AssetSpec",
    "Component",
    "ComponentSpec",
    "Compute",
    "ComputeSpec",
    "Data",
    "DataSpec",
    "Datastore",
    "DatastoreSpec",
    "ENTITY_CLASSES",
    "Environment",
    "EnvironmentSpec",
    "Model",
    "ModelSpec",
    "SPEC_CLASSES",
    "entity_class",
    "parse_ref",
]
