"""Registries: catalogues of environments, models and components shared across workspaces.

A user's registries are folders listed in a per-user file (:mod:`.config`); the built-in
``azureml`` registry (:mod:`.builtin`) holds local equivalents of Azure's curated environments.
``ws.registries`` (:class:`.operations.RegistryOperations`) creates, shares into and imports
from them; references (``azureml://registries/...``, ``azureml:AzureML-...``) are resolved by
the asset operations' ``get``.
"""

from jupyter_mlws.registries.builtin import BUILTIN_NAME, BuiltinRegistry, catalog_table
from jupyter_mlws.registries.catalog import FolderRegistry, RegistryEntry
from jupyter_mlws.registries.operations import RegistryOperations
from jupyter_mlws.registries.storage import FolderStorage, RegistryStorage, open_storage

__all__ = ["BUILTIN_NAME", "BuiltinRegistry", "FolderRegistry", "FolderStorage",
           "RegistryEntry", "RegistryOperations", "RegistryStorage", "catalog_table",
           "open_storage"]
