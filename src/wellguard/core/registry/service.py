"""The device registry: identities, twins, policies and configurations, audited.

Theory of operation: callers (the REST API; later the gateway and provisioning) hand in
validated request values and an ``Actor``; the registry applies IoT Hub's rules —
generation ids, etags, hub-generated keys, twin versions, lifecycle transitions — and
writes through a ``RegistryStore`` port, passing the audit record of the action so the
change and its audit entry commit together. Time comes from the injected clock.

Device changes are built by ``DeviceChanges`` (``changes.py``) for the single-device
calls and for the bulk registry operation alike (``bulk_import``, see ``bulk.py``): the
bulk call writes its device changes in one transaction, yet audits and announces each
one as the single call would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from wellguard.core.identity.keys import generate_symmetric_key
from wellguard.core.registry.audit import ChainBreak, find_chain_break
from wellguard.core.registry.bulk import (
    ImportEntry,
    ImportFailure,
    ImportResult,
    check_import_request,
    plan_import,
)
from wellguard.core.registry.changes import (
    Actor,
    DeviceChanges,
    new_etag,
    new_generation_id,
    refuse_if_decommissioned,
)
from wellguard.core.registry.events import ChangeKind, RegistryChange, RegistryNotifier
from wellguard.core.registry.ports import DeviceChange, RegistryStore
from wellguard.core.registry.specs import AuthSpec, DeviceSettings, keep_unstated_keys
from wellguard.core.registry.twins import (
    apply_reported_patch,
    apply_twin_patch,
    replace_twin_document,
)
from wellguard.errors import (
    InvalidInputError,
    NotFoundError,
    PreconditionFailedError,
    RegistryError,
)
from wellguard.model.audit import AuditEntry, AuditRecord
from wellguard.model.configuration import Configuration
from wellguard.model.device import (
    Authentication,
    AuthType,
    ConnectionState,
    Device,
    DeviceStatus,
    LifecycleState,
    Module,
    can_transition,
)
from wellguard.model.ids import validate_configuration_id, validate_device_id, validate_module_id
from wellguard.model.policy import DEFAULT_POLICY_RIGHTS, SharedAccessPolicy
from wellguard.model.twin import Twin

__all__ = ["Actor", "AuthSpec", "Registry", "new_etag"]


class Registry:
    """Domain operations on the registry; every change is audited."""

    def __init__(
        self,
        store: RegistryStore,
        clock: Callable[[], datetime],
        notifier: RegistryNotifier | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._changes = DeviceChanges(clock)
        self.notifier = notifier or RegistryNotifier()

    def _identity_changed(self, device_id: str, module_id: str | None = None) -> None:
        self.notifier.publish(
            RegistryChange(ChangeKind.IDENTITY, device_id=device_id, module_id=module_id)
        )

    @property
    def store(self) -> RegistryStore:
        """The store underneath (for read paths that need no domain rules)."""
        return self._store

    def _audit(self, actor: Actor, action: str, target: str, **details: Any) -> AuditRecord:
        return self._changes.audit(actor, action, target, **details)

    # -- devices ------------------------------------------------------------------------

    def create_device(
        self,
        device_id: str,
        auth: AuthSpec,
        *,
        actor: Actor,
        status: DeviceStatus = DeviceStatus.ENABLED,
        status_reason: str | None = None,
        iot_edge: bool = False,
    ) -> Device:
        """Create a device (and its twin)."""
        settings = DeviceSettings(auth, status, status_reason, iot_edge)
        change = self._changes.to_create(device_id, settings, actor)
        self._store.insert_device(change.device, change.twin, change.audit)
        # Announced so that whoever remembered "no such device" (an authentication
        # cache) forgets it at once.
        self._identity_changed(device_id)
        return change.device

    def get_device(self, device_id: str) -> Device:
        """A device, or NotFoundError."""
        device = self._store.get_device(device_id)
        if device is None:
            raise NotFoundError("device", device_id)
        return device

    def update_device(
        self,
        device_id: str,
        auth: AuthSpec,
        *,
        actor: Actor,
        expected_etag: str | None,
        status: DeviceStatus,
        status_reason: str | None,
        iot_edge: bool,
    ) -> Device:
        """Replace a device's settings (IoT Hub PUT with If-Match)."""
        settings = DeviceSettings(auth, status, status_reason, iot_edge)
        change = self._changes.to_replace(
            self.get_device(device_id), settings, actor, expected_etag
        )
        self._store.update_device(change.device, expected_etag, change.audit)
        self._identity_changed(device_id)
        return change.device

    def list_devices(self, *, after: str | None, limit: int) -> list[Device]:
        """Devices by id, a page at a time."""
        return self._store.list_devices(after=after, limit=limit)

    def delete_device(self, device_id: str, *, actor: Actor, expected_etag: str | None) -> None:
        """Delete a device with its modules and twins."""
        change = self._changes.to_remove(device_id, actor, expected_etag)
        self._store.delete_device(device_id, expected_etag, change.audit)
        self._identity_changed(device_id)

    # -- bulk registry operations -------------------------------------------------------

    def bulk_import(self, entries: Sequence[ImportEntry], *, actor: Actor) -> ImportResult:
        """Apply up to 100 device changes (IoT Hub's bulk registry operation), each on its
        own: the entries that cannot apply are reported, the device changes of the others
        are stored in one transaction, then announced and audited like single calls."""
        check_import_request(entries)
        current = self._store.get_devices({entry.device_id for entry in entries})
        failures: list[ImportFailure] = []
        planned: list[tuple[int, DeviceChange]] = []
        twin_patches: list[int] = []
        for index, entry in enumerate(entries):
            try:
                change = plan_import(entry, current.get(entry.device_id), self._changes, actor)
            except (InvalidInputError, RegistryError) as exc:
                failures.append(ImportFailure(index, entry, exc))
                continue
            if change is None:
                twin_patches.append(index)
            else:
                planned.append((index, change))
        outcomes = self._store.apply_device_changes([c for _, c in planned]) if planned else []
        for (index, _change), error in zip(planned, outcomes, strict=True):
            if error is None:
                self._identity_changed(entries[index].device_id)
            else:
                failures.append(ImportFailure(index, entries[index], error))
        for index in twin_patches:
            entry = entries[index]
            try:
                self.update_twin(
                    entry.device_id,
                    None,
                    tags=entry.tags,
                    desired=entry.desired,
                    replace_all=False,
                    expected_etag=entry.expected_etag,
                    actor=actor,
                )
            except (InvalidInputError, RegistryError) as exc:
                failures.append(ImportFailure(index, entry, exc))
        failures.sort(key=lambda failure: failure.index)
        return ImportResult(applied=len(entries) - len(failures), failures=tuple(failures))

    def set_status(
        self, device_id: str, status: DeviceStatus, reason: str | None, *, actor: Actor
    ) -> Device:
        """Enable or disable a device, keeping everything else."""
        current = self.get_device(device_id)
        refuse_if_decommissioned(current)
        now = self._clock()
        updated = replace(
            current,
            etag=new_etag(),
            status=status,
            status_reason=reason,
            status_updated=now,
            updated=now,
        )
        action = "device.enable" if status is DeviceStatus.ENABLED else "device.disable"
        self._store.update_device(
            updated, current.etag, self._audit(actor, action, device_id, reason=reason)
        )
        self._identity_changed(device_id)
        return updated

    def rotate_keys(self, device_id: str, *, actor: Actor) -> Device:
        """New primary key; the old primary becomes the secondary (devices keep working)."""
        current = self.get_device(device_id)
        if current.authentication.type is not AuthType.SAS:
            raise InvalidInputError(
                f"device {device_id!r} does not use sas authentication", field="authentication"
            )
        updated = replace(
            current,
            etag=new_etag(),
            authentication=replace(
                current.authentication,
                primary_key=generate_symmetric_key(),
                secondary_key=current.authentication.primary_key,
            ),
            updated=self._clock(),
        )
        self._store.update_device(
            updated, current.etag, self._audit(actor, "device.keys.rotate", device_id)
        )
        self._identity_changed(device_id)
        return updated

    def set_lifecycle(
        self, device_id: str, state: LifecycleState, reason: str | None, *, actor: Actor
    ) -> Device:
        """Move a device through its lifecycle; decommissioning wipes its credentials."""
        current = self.get_device(device_id)
        if state is current.lifecycle:
            return current
        if not can_transition(current.lifecycle, state):
            raise InvalidInputError(
                f"device {device_id!r} cannot go from {current.lifecycle.value} to {state.value}",
                field="state",
            )
        now = self._clock()
        updated = replace(current, etag=new_etag(), lifecycle=state, updated=now)
        if state is LifecycleState.DECOMMISSIONED:
            updated = replace(
                updated,
                status=DeviceStatus.DISABLED,
                status_reason=reason or "decommissioned",
                status_updated=now,
                authentication=Authentication(type=AuthType.NONE),
            )
        record = self._audit(
            actor,
            "device.lifecycle",
            device_id,
            **{"from": current.lifecycle.value, "to": state.value, "reason": reason},
        )
        self._store.update_device(updated, current.etag, record)
        self._identity_changed(device_id)
        return updated

    # -- modules ------------------------------------------------------------------------

    def create_module(
        self,
        device_id: str,
        module_id: str,
        auth: AuthSpec,
        *,
        actor: Actor,
        managed_by: str | None = None,
    ) -> Module:
        """Create a module identity (and its twin) within a device."""
        validate_device_id(device_id)
        validate_module_id(module_id)
        now = self._clock()
        module = Module(
            device_id=device_id,
            module_id=module_id,
            generation_id=new_generation_id(),
            etag=new_etag(),
            authentication=auth.resolve(),
            managed_by=managed_by,
            connection_state=ConnectionState.DISCONNECTED,
            connection_state_updated=None,
            last_activity=None,
            c2d_count=0,
            created=now,
            updated=now,
        )
        twin = Twin(device_id=device_id, module_id=module_id, etag=new_etag(), version=1)
        record = self._audit(actor, "module.create", f"{device_id}/{module_id}")
        self._store.insert_module(module, twin, record)
        self._identity_changed(device_id, module_id)
        return module

    def get_module(self, device_id: str, module_id: str) -> Module:
        """A module, or NotFoundError."""
        module = self._store.get_module(device_id, module_id)
        if module is None:
            raise NotFoundError("module", f"{device_id}/{module_id}")
        return module

    def list_modules(self, device_id: str) -> list[Module]:
        """The modules of an existing device."""
        self.get_device(device_id)
        return self._store.list_modules(device_id)

    def update_module(
        self,
        device_id: str,
        module_id: str,
        auth: AuthSpec,
        *,
        actor: Actor,
        expected_etag: str | None,
        managed_by: str | None,
    ) -> Module:
        """Replace a module's settings."""
        current = self.get_module(device_id, module_id)
        authentication = keep_unstated_keys(auth, current.authentication).resolve()
        updated = replace(
            current,
            etag=new_etag(),
            authentication=authentication,
            managed_by=managed_by,
            updated=self._clock(),
        )
        record = self._audit(actor, "module.update", f"{device_id}/{module_id}")
        self._store.update_module(updated, expected_etag, record)
        self._identity_changed(device_id, module_id)
        return updated

    def delete_module(
        self, device_id: str, module_id: str, *, actor: Actor, expected_etag: str | None
    ) -> None:
        """Delete a module and its twin."""
        record = self._audit(actor, "module.delete", f"{device_id}/{module_id}")
        self._store.delete_module(device_id, module_id, expected_etag, record)
        self._identity_changed(device_id, module_id)

    # -- twins --------------------------------------------------------------------------

    def get_twin(
        self, device_id: str, module_id: str | None = None
    ) -> tuple[Twin, Device | Module]:
        """A twin with the identity it belongs to."""
        identity: Device | Module = (
            self.get_module(device_id, module_id) if module_id else self.get_device(device_id)
        )
        twin = self._store.get_twin(device_id, module_id)
        if twin is None:
            raise NotFoundError("twin", device_id + (f"/{module_id}" if module_id else ""))
        return twin, identity

    def update_twin(
        self,
        device_id: str,
        module_id: str | None,
        *,
        tags: Any | None,
        desired: Any | None,
        replace_all: bool,
        expected_etag: str | None,
        actor: Actor,
    ) -> tuple[Twin, Device | Module]:
        """PATCH (merge) or PUT (replace) tags and desired properties of a twin."""
        twin, identity = self.get_twin(device_id, module_id)
        target = device_id + (f"/{module_id}" if module_id else "")
        if expected_etag is not None and expected_etag != twin.etag:
            raise PreconditionFailedError("twin", target)
        change = replace_twin_document if replace_all else apply_twin_patch
        updated = change(twin, tags=tags, desired=desired, new_etag=new_etag())
        if updated is twin:
            return twin, identity
        record = self._audit(
            actor,
            "twin.replace" if replace_all else "twin.update",
            target,
            desired_version=updated.desired_version,
        )
        self._store.update_twin(updated, twin.etag, record)
        if updated.desired_version != twin.desired_version:
            patch = dict(updated.desired) if replace_all else dict(desired or {})
            patch["$version"] = updated.desired_version
            self.notifier.publish(
                RegistryChange(
                    ChangeKind.DESIRED,
                    device_id=device_id,
                    module_id=module_id,
                    twin=updated,
                    patch=patch,
                )
            )
        return updated, identity

    def apply_reported(self, device_id: str, module_id: str | None, patch: Any) -> Twin:
        """Merge a device's reported-properties patch (device side: not audited)."""
        for _attempt in range(5):
            twin = self._store.get_twin(device_id, module_id)
            if twin is None:
                raise NotFoundError("twin", device_id + (f"/{module_id}" if module_id else ""))
            updated = apply_reported_patch(twin, patch, new_etag=new_etag())
            try:
                self._store.update_twin(updated, twin.etag, None)
            except PreconditionFailedError:
                continue  # a concurrent service update; merge onto the newer twin
            return updated
        raise PreconditionFailedError("twin", device_id)

    def iter_twins(self, *, modules: bool) -> Iterator[tuple[Twin, Device | Module]]:
        """Every twin with its identity (for queries)."""
        return self._store.iter_twins(modules=modules)

    def statistics(self) -> dict[str, int]:
        """Device counts: total, enabled, disabled, connected."""
        return self._store.count_devices()

    # -- policies -----------------------------------------------------------------------

    def list_policies(self) -> list[SharedAccessPolicy]:
        """All shared access policies."""
        return self._store.list_policies()

    def get_policy(self, name: str) -> SharedAccessPolicy:
        """A policy by name, or NotFoundError."""
        for policy in self._store.list_policies():
            if policy.name == name:
                return policy
        raise NotFoundError("policy", name)

    def ensure_default_policies(self, *, actor: Actor) -> list[SharedAccessPolicy]:
        """Create IoT Hub's default policies that do not exist yet, with fresh keys."""
        existing = {p.name for p in self._store.list_policies()}
        for name, rights in DEFAULT_POLICY_RIGHTS.items():
            if name in existing:
                continue
            policy = SharedAccessPolicy(
                name=name,
                rights=rights,
                primary_key=generate_symmetric_key(),
                secondary_key=generate_symmetric_key(),
            )
            self._store.put_policy(
                policy, self._audit(actor, "policy.create", name, rights=rights.render())
            )
            self.notifier.publish(RegistryChange(ChangeKind.POLICY))
        return self._store.list_policies()

    # -- configurations -----------------------------------------------------------------

    def put_configuration(
        self, conf: Configuration, *, actor: Actor, expected_etag: str | None
    ) -> tuple[Configuration, bool]:
        """Create or update a configuration; returns it and whether it was created."""
        validate_configuration_id(conf.configuration_id)
        now = self._clock()
        stored = replace(conf, etag=new_etag(), created=conf.created or now, updated=now)
        record = self._audit(actor, "configuration.put", conf.configuration_id)
        created = self._store.put_configuration(stored, expected_etag, record)
        return self.get_configuration(conf.configuration_id), created

    def get_configuration(self, configuration_id: str) -> Configuration:
        """A configuration, or NotFoundError."""
        conf = self._store.get_configuration(configuration_id)
        if conf is None:
            raise NotFoundError("configuration", configuration_id)
        return conf

    def list_configurations(self, limit: int) -> list[Configuration]:
        """Configurations by id."""
        return self._store.list_configurations(limit)

    def delete_configuration(
        self, configuration_id: str, *, actor: Actor, expected_etag: str | None
    ) -> None:
        """Delete a configuration."""
        record = self._audit(actor, "configuration.delete", configuration_id)
        self._store.delete_configuration(configuration_id, expected_etag, record)

    # -- audit --------------------------------------------------------------------------

    def record(self, actor: Actor, action: str, target: str, **details: Any) -> AuditEntry:
        """Append an audit entry for an action that changes nothing in the registry."""
        return self._store.append_audit(self._audit(actor, action, target, **details))

    def verify_audit(self) -> tuple[int, ChainBreak | None]:
        """Check the whole audit chain: (entries checked, first break or None)."""
        entries = list(self._store.iter_audit())
        return len(entries), find_chain_break(entries)
