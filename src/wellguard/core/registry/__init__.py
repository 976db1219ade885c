"""The device registry: identities, twins, policies, configurations and the audit chain."""

from wellguard.core.registry.audit import ChainBreak, chain_hash, find_chain_break
from wellguard.core.registry.ports import RegistryStore
from wellguard.core.registry.service import Actor, AuthSpec, Registry, new_etag

__all__ = [
    "Actor",
    "AuthSpec",
    "ChainBreak",
    "Registry",
    "RegistryStore",
    "chain_hash",
    "find_chain_break",
    "new_etag",
]
