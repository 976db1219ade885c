"""The registry store on SQL (SQLite by default, PostgreSQL at scale).

Each mutating call is one transaction that also appends its audit record, so a change
and its audit entry land together. Optimistic concurrency is a compare-and-swap on the
etag column (``UPDATE ... WHERE etag = :expected``); a miss is told apart from a
missing row afterwards. A batch of device changes (bulk registry operations) is one
transaction with a SAVEPOINT per change, so a change that fails rolls back alone; on
SQLite this works because the engine issues BEGIN itself (see ``engine.py``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from wellguard.adapters.sql import schema as t
from wellguard.adapters.sql.rows import RowMapper
from wellguard.core.registry.audit import GENESIS, chain_hash
from wellguard.core.registry.ports import DeviceChange, InsertDevice, RemoveDevice, ReplaceDevice
from wellguard.core.secretbox import SecretBox
from wellguard.errors import (
    AlreadyExistsError,
    NotFoundError,
    PreconditionFailedError,
    RegistryError,
    StorageError,
)
from wellguard.model.audit import AuditEntry, AuditRecord
from wellguard.model.certificate import IssuedCertificate
from wellguard.model.configuration import Configuration
from wellguard.model.device import Device, Module
from wellguard.model.policy import SharedAccessPolicy
from wellguard.model.twin import Twin

__all__ = ["SqlRegistryStore"]

# Ids per IN (...) list: well under SQLite's bound-parameter limit.
_IN_CHUNK = 500


class SqlRegistryStore:
    """Implements every registry port (``wellguard.core.registry.ports``) on one engine."""

    def __init__(self, engine: Engine, box: SecretBox) -> None:
        self._engine = engine
        self._rows = RowMapper(box)
        self._postgres = engine.dialect.name == "postgresql"

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine underneath."""
        return self._engine

    # -- shared mechanics -------------------------------------------------------------

    def _append_audit(self, conn: Connection, record: AuditRecord) -> AuditEntry:
        return self._append_audits(conn, [record])[0]

    def _append_audits(self, conn: Connection, records: Sequence[AuditRecord]) -> list[AuditEntry]:
        if self._postgres:
            # One writer at a time extends the chain; readers are not blocked.
            conn.exec_driver_sql("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE")
        last = conn.execute(
            select(t.audit_log.c.seq, t.audit_log.c.hash)
            .order_by(t.audit_log.c.seq.desc())
            .limit(1)
        ).first()
        seq = 0 if last is None else last.seq
        prev = GENESIS if last is None else last.hash
        entries = []
        for record in records:
            seq += 1
            digest = chain_hash(seq, record, prev)
            entries.append(AuditEntry(seq=seq, record=record, prev_hash=prev, hash=digest))
            prev = digest
        rows = [
            {
                "seq": entry.seq,
                "at": entry.record.at,
                "actor": entry.record.actor,
                "action": entry.record.action,
                "target": entry.record.target,
                "source": entry.record.source,
                "details": entry.record.details,
                "prev_hash": entry.prev_hash,
                "hash": entry.hash,
            }
            for entry in entries
        ]
        # Parameters apart from the statement: compiled once, executemany for a batch.
        conn.execute(insert(t.audit_log), rows)
        return entries

    @staticmethod
    def _cas_update(
        conn: Connection,
        table: Table,
        keys: dict[str, Any],
        values: dict[str, Any],
        expected_etag: str | None,
        kind: str,
        key_text: str,
    ) -> None:
        where = [table.c[name] == value for name, value in keys.items()]
        if expected_etag is not None:
            where.append(table.c.etag == expected_etag)
        result = conn.execute(update(table).where(*where).values(**values))
        if result.rowcount == 1:
            return
        exists = conn.execute(
            select(func.count()).select_from(table).where(*where[: len(keys)])
        ).scalar_one()
        if not exists:
            raise NotFoundError(kind, key_text)
        raise PreconditionFailedError(kind, key_text)

    @staticmethod
    def _cas_delete(
        conn: Connection,
        table: Table,
        keys: dict[str, Any],
        expected_etag: str | None,
        kind: str,
        key_text: str,
    ) -> None:
        where = [table.c[name] == value for name, value in keys.items()]
        if expected_etag is not None:
            where.append(table.c.etag == expected_etag)
        result = conn.execute(delete(table).where(*where))
        if result.rowcount == 1:
            return
        exists = conn.execute(
            select(func.count()).select_from(table).where(*where[: len(keys)])
        ).scalar_one()
        if not exists:
            raise NotFoundError(kind, key_text)
        raise PreconditionFailedError(kind, key_text)

    def _write(self) -> Any:
        return self._engine.begin()

    # -- devices ------------------------------------------------------------------------

    def insert_device(self, device: Device, twin: Twin, audit: AuditRecord) -> None:
        """Store a new device with its twin."""
        self._write_device_change(InsertDevice(device, twin, audit))

    def _write_device_change(self, change: DeviceChange) -> None:
        try:
            with self._write() as conn:
                self._apply_device_change(conn, change)
        except IntegrityError:
            raise AlreadyExistsError("device", _changed_device_id(change)) from None

    def apply_device_changes(self, changes: Sequence[DeviceChange]) -> list[RegistryError | None]:
        """Write ``changes`` in one transaction, each as if in a savepoint of its own: one
        that fails is rolled back alone and its error takes its place in the answer."""
        distinct = len({_changed_device_id(change) for change in changes}) == len(changes)
        with self._write() as conn:
            if distinct:
                # First all at once (one executemany per table), which is what a batch of
                # creations needs to be fast; when any change fails, that is undone and
                # the changes are written one by one.
                try:
                    with conn.begin_nested():
                        self._apply_device_batch(conn, changes)
                except (IntegrityError, RegistryError):
                    pass
                else:
                    return [None] * len(changes)
            return [self._apply_device_change_alone(conn, change) for change in changes]

    def _apply_device_batch(self, conn: Connection, changes: Sequence[DeviceChange]) -> None:
        inserts = [change for change in changes if isinstance(change, InsertDevice)]
        if inserts:
            conn.execute(insert(t.devices), [self._rows.device_values(c.device) for c in inserts])
            conn.execute(insert(t.twins), [self._rows.twin_values(c.twin) for c in inserts])
        for change in changes:
            if not isinstance(change, InsertDevice):
                self._change_device_rows(conn, change)
        self._append_audits(conn, [change.audit for change in changes])

    def _apply_device_change_alone(
        self, conn: Connection, change: DeviceChange
    ) -> RegistryError | None:
        try:
            with conn.begin_nested():
                self._apply_device_change(conn, change)
        except IntegrityError:
            return AlreadyExistsError("device", _changed_device_id(change))
        except RegistryError as exc:
            return exc
        return None

    def _apply_device_change(self, conn: Connection, change: DeviceChange) -> None:
        self._change_device_rows(conn, change)
        self._append_audit(conn, change.audit)

    def _change_device_rows(self, conn: Connection, change: DeviceChange) -> None:
        if isinstance(change, InsertDevice):
            conn.execute(insert(t.devices), self._rows.device_values(change.device))
            conn.execute(insert(t.twins), self._rows.twin_values(change.twin))
        elif isinstance(change, ReplaceDevice):
            values = self._rows.device_values(change.device)
            device_id = values.pop("device_id")
            keys = {"device_id": device_id}
            self._cas_update(
                conn, t.devices, keys, values, change.expected_etag, "device", device_id
            )
        else:
            device_id = change.device_id
            # Explicit deletes: SQLite only cascades with foreign_keys=ON per connection.
            conn.execute(delete(t.twins).where(t.twins.c.device_id == device_id))
            conn.execute(delete(t.modules).where(t.modules.c.device_id == device_id))
            self._cas_delete(
                conn, t.devices, {"device_id": device_id}, change.expected_etag, "device", device_id
            )

    def get_device(self, device_id: str) -> Device | None:
        """The device, or None."""
        with self._engine.connect() as conn:
            row = conn.execute(select(t.devices).where(t.devices.c.device_id == device_id)).first()
        return None if row is None else self._rows.device_from_row(row)

    def get_devices(self, device_ids: Collection[str]) -> dict[str, Device]:
        """The devices that exist among ``device_ids``, by id (one query per 500 ids)."""
        wanted = sorted(set(device_ids))
        found: dict[str, Device] = {}
        with self._engine.connect() as conn:
            for start in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[start : start + _IN_CHUNK]
                query = select(t.devices).where(t.devices.c.device_id.in_(chunk))
                for row in conn.execute(query):
                    device = self._rows.device_from_row(row)
                    found[device.device_id] = device
        return found

    def list_devices(self, *, after: str | None, limit: int) -> list[Device]:
        """Devices ordered by id, starting after ``after``."""
        query = select(t.devices).order_by(t.devices.c.device_id).limit(limit)
        if after is not None:
            query = query.where(t.devices.c.device_id > after)
        with self._engine.connect() as conn:
            return [self._rows.device_from_row(row) for row in conn.execute(query)]

    def update_device(self, device: Device, expected_etag: str | None, audit: AuditRecord) -> None:
        """Replace a device if its etag still matches."""
        self._write_device_change(ReplaceDevice(device, expected_etag, audit))

    def delete_device(self, device_id: str, expected_etag: str | None, audit: AuditRecord) -> None:
        """Delete a device, its modules and twins if its etag still matches."""
        self._write_device_change(RemoveDevice(device_id, expected_etag, audit))

    def count_devices(self) -> dict[str, int]:
        """Device counts: total, enabled, disabled, connected."""
        c = t.devices.c
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(c.status, c.connection_state, func.count()).group_by(
                    c.status, c.connection_state
                )
            ).all()
        counts = {"total": 0, "enabled": 0, "disabled": 0, "connected": 0}
        for status, state, n in rows:
            counts["total"] += n
            counts[status] = counts.get(status, 0) + n
            if state == "Connected":
                counts["connected"] += n
        return counts

    # -- modules ------------------------------------------------------------------------

    def insert_module(self, module: Module, twin: Twin, audit: AuditRecord) -> None:
        """Store a new module with its twin."""
        key = f"{module.device_id}/{module.module_id}"
        try:
            with self._write() as conn:
                parent = conn.execute(
                    select(t.devices.c.device_id).where(t.devices.c.device_id == module.device_id)
                ).first()
                if parent is None:
                    raise NotFoundError("device", module.device_id)
                conn.execute(insert(t.modules).values(**self._rows.module_values(module)))
                conn.execute(insert(t.twins).values(**self._rows.twin_values(twin)))
                self._append_audit(conn, audit)
        except IntegrityError:
            raise AlreadyExistsError("module", key) from None

    def get_module(self, device_id: str, module_id: str) -> Module | None:
        """The module, or None."""
        c = t.modules.c
        with self._engine.connect() as conn:
            row = conn.execute(
                select(t.modules).where(c.device_id == device_id, c.module_id == module_id)
            ).first()
        return None if row is None else self._rows.module_from_row(row)

    def list_modules(self, device_id: str) -> list[Module]:
        """The modules of a device, by id."""
        c = t.modules.c
        query = select(t.modules).where(c.device_id == device_id).order_by(c.module_id)
        with self._engine.connect() as conn:
            return [self._rows.module_from_row(row) for row in conn.execute(query)]

    def update_module(self, module: Module, expected_etag: str | None, audit: AuditRecord) -> None:
        """Replace a module if its etag still matches."""
        values = self._rows.module_values(module)
        keys = {"device_id": values.pop("device_id"), "module_id": values.pop("module_id")}
        with self._write() as conn:
            self._cas_update(
                conn,
                t.modules,
                keys,
                values,
                expected_etag,
                "module",
                f"{module.device_id}/{module.module_id}",
            )
            self._append_audit(conn, audit)

    def delete_module(
        self, device_id: str, module_id: str, expected_etag: str | None, audit: AuditRecord
    ) -> None:
        """Delete a module and its twin if its etag still matches."""
        keys = {"device_id": device_id, "module_id": module_id}
        with self._write() as conn:
            conn.execute(
                delete(t.twins).where(
                    t.twins.c.device_id == device_id, t.twins.c.module_id == module_id
                )
            )
            self._cas_delete(
                conn, t.modules, keys, expected_etag, "module", f"{device_id}/{module_id}"
            )
            self._append_audit(conn, audit)

    # -- twins --------------------------------------------------------------------------

    def get_twin(self, device_id: str, module_id: str | None) -> Twin | None:
        """The twin of a device (module_id None) or module, or None."""
        c = t.twins.c
        with self._engine.connect() as conn:
            row = conn.execute(
                select(t.twins).where(c.device_id == device_id, c.module_id == (module_id or ""))
            ).first()
        return None if row is None else self._rows.twin_from_row(row)

    def update_twin(self, twin: Twin, expected_etag: str | None, audit: AuditRecord | None) -> None:
        """Replace a twin if its etag still matches (audit None for device-side patches)."""
        values = self._rows.twin_values(twin)
        keys = {"device_id": values.pop("device_id"), "module_id": values.pop("module_id")}
        key_text = twin.device_id + (f"/{twin.module_id}" if twin.module_id else "")
        with self._write() as conn:
            self._cas_update(conn, t.twins, keys, values, expected_etag, "twin", key_text)
            if audit is not None:
                self._append_audit(conn, audit)

    def iter_twins(self, *, modules: bool) -> Iterator[tuple[Twin, Device | Module]]:
        """Every device twin (or module twin) with its identity, in key order."""
        tw = t.twins
        owner = t.modules if modules else t.devices
        join_on = tw.c.device_id == owner.c.device_id
        if modules:
            join_on = join_on & (tw.c.module_id == t.modules.c.module_id)
        else:
            join_on = join_on & (tw.c.module_id == "")
        twin_cols = [col.label(f"twin_{col.name}") for col in tw.c]
        query = (
            select(owner, *twin_cols)
            .select_from(tw.join(owner, join_on))
            .order_by(tw.c.device_id, tw.c.module_id)
        )
        with self._engine.connect() as conn:
            for row in conn.execute(query).yield_per(500):
                twin = Twin(
                    device_id=row.twin_device_id,
                    module_id=row.twin_module_id or None,
                    etag=row.twin_etag,
                    version=row.twin_version,
                    tags=row.twin_tags,
                    desired=row.twin_desired,
                    desired_version=row.twin_desired_version,
                    reported=row.twin_reported,
                    reported_version=row.twin_reported_version,
                )
                identity: Device | Module = (
                    self._rows.module_from_row(row) if modules else self._rows.device_from_row(row)
                )
                yield twin, identity

    # -- policies -----------------------------------------------------------------------

    def list_policies(self) -> list[SharedAccessPolicy]:
        """All shared access policies, by name."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(t.policies).order_by(t.policies.c.name))
            return [self._rows.policy_from_row(row) for row in rows]

    def put_policy(self, policy: SharedAccessPolicy, audit: AuditRecord) -> None:
        """Create or replace a policy."""
        values = self._rows.policy_values(policy)
        with self._write() as conn:
            conn.execute(delete(t.policies).where(t.policies.c.name == policy.name))
            conn.execute(insert(t.policies).values(**values))
            self._append_audit(conn, audit)

    # -- certificates -------------------------------------------------------------------

    def record_certificate(self, cert: IssuedCertificate, audit: AuditRecord) -> None:
        """Remember a certificate the CA issued."""
        with self._write() as conn:
            conn.execute(
                insert(t.certificates).values(
                    serial=str(cert.serial),
                    device_id=cert.device_id,
                    subject=cert.subject,
                    not_before=cert.not_before,
                    not_after=cert.not_after,
                    sha256_thumbprint=cert.sha256_thumbprint,
                    pem=cert.pem,
                )
            )
            self._append_audit(conn, audit)

    def get_certificate(self, serial: int) -> IssuedCertificate | None:
        """An issued certificate by serial number, or None."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(t.certificates).where(t.certificates.c.serial == str(serial))
            ).first()
        return None if row is None else self._rows.certificate_from_row(row)

    def list_certificates(
        self, *, device_id: str | None, after: int | None, limit: int
    ) -> list[IssuedCertificate]:
        """Issued certificates, optionally of one device, soonest expiry first."""
        c = t.certificates.c
        query = select(t.certificates).order_by(c.not_after, c.serial)
        if device_id is not None:
            query = query.where(c.device_id == device_id)
        with self._engine.connect() as conn:
            rows = [self._rows.certificate_from_row(r) for r in conn.execute(query)]
        if after is not None:
            index = next((i for i, cert in enumerate(rows) if cert.serial == after), None)
            rows = rows[index + 1 :] if index is not None else []
        return rows[:limit]

    def revoke_certificate(
        self, serial: int, at: datetime, reason: str, audit: AuditRecord
    ) -> IssuedCertificate:
        """Mark a certificate revoked (idempotent: the first revocation time stays)."""
        c = t.certificates.c
        with self._write() as conn:
            row = conn.execute(select(t.certificates).where(c.serial == str(serial))).first()
            if row is None:
                raise NotFoundError("certificate", str(serial))
            if row.revoked_at is None:
                conn.execute(
                    update(t.certificates)
                    .where(c.serial == str(serial))
                    .values(revoked_at=at, revocation_reason=reason)
                )
                self._append_audit(conn, audit)
            row = conn.execute(select(t.certificates).where(c.serial == str(serial))).one()
        return self._rows.certificate_from_row(row)

    def revoked_certificates(self) -> list[IssuedCertificate]:
        """Every revoked certificate (for the CRL)."""
        c = t.certificates.c
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(t.certificates).where(c.revoked_at.is_not(None)).order_by(c.revoked_at)
            )
            return [self._rows.certificate_from_row(r) for r in rows]

    # -- configurations -----------------------------------------------------------------

    def put_configuration(
        self, conf: Configuration, expected_etag: str | None, audit: AuditRecord
    ) -> bool:
        """Create or update a configuration; True when it was created."""
        values = self._rows.configuration_values(conf)
        key = values.pop("configuration_id")
        with self._write() as conn:
            existing = conn.execute(
                select(t.configurations.c.created).where(t.configurations.c.configuration_id == key)
            ).first()
            if existing is None:
                conn.execute(insert(t.configurations).values(configuration_id=key, **values))
                created = True
            else:
                values["created"] = existing.created
                self._cas_update(
                    conn,
                    t.configurations,
                    {"configuration_id": key},
                    values,
                    expected_etag,
                    "configuration",
                    key,
                )
                created = False
            self._append_audit(conn, audit)
        return created

    def get_configuration(self, configuration_id: str) -> Configuration | None:
        """A configuration, or None."""
        c = t.configurations.c
        with self._engine.connect() as conn:
            row = conn.execute(
                select(t.configurations).where(c.configuration_id == configuration_id)
            ).first()
        return None if row is None else self._rows.configuration_from_row(row)

    def list_configurations(self, limit: int) -> list[Configuration]:
        """Configurations by id."""
        query = select(t.configurations).order_by(t.configurations.c.configuration_id).limit(limit)
        with self._engine.connect() as conn:
            return [self._rows.configuration_from_row(r) for r in conn.execute(query)]

    def delete_configuration(
        self, configuration_id: str, expected_etag: str | None, audit: AuditRecord
    ) -> None:
        """Delete a configuration if its etag still matches."""
        with self._write() as conn:
            self._cas_delete(
                conn,
                t.configurations,
                {"configuration_id": configuration_id},
                expected_etag,
                "configuration",
                configuration_id,
            )
            self._append_audit(conn, audit)

    # -- audit --------------------------------------------------------------------------

    def append_audit(self, record: AuditRecord) -> AuditEntry:
        """Append one record to the chain on its own."""
        try:
            with self._write() as conn:
                return self._append_audit(conn, record)
        except SQLAlchemyError as exc:
            raise StorageError(f"audit append failed: {exc}") from exc

    def list_audit(self, *, after: int | None, limit: int) -> list[AuditEntry]:
        """Audit entries in order, starting after sequence number ``after``."""
        query = select(t.audit_log).order_by(t.audit_log.c.seq).limit(limit)
        if after is not None:
            query = query.where(t.audit_log.c.seq > after)
        with self._engine.connect() as conn:
            return [self._rows.audit_from_row(r) for r in conn.execute(query)]

    def iter_audit(self) -> Iterator[AuditEntry]:
        """Every audit entry in order."""
        query = select(t.audit_log).order_by(t.audit_log.c.seq)
        with self._engine.connect() as conn:
            for row in conn.execute(query).yield_per(1000):
                yield self._rows.audit_from_row(row)


def _changed_device_id(change: DeviceChange) -> str:
    return change.device_id if isinstance(change, RemoveDevice) else change.device.device_id
