"""The registry records device authentication reads, kept in memory between connects.

Theory of operation: every MQTT CONNECT needs its device (and module) record and, for
SAS, the shared access policies. They change rarely, so they are kept here, keyed by
device id; a device's module records (found or not) hang off its entry, so forgetting a
device forgets its modules too. "Not found" is kept as well: the registry announces the
creation of devices and modules, so a cached miss is forgotten as soon as the identity
exists.

Three things keep an entry from outliving the truth:

- invalidation: the authenticator forgets a device when the registry announces a change
  to it (``forget_device``) and the policies on a policy change (``forget_policies``);
- a load that raced with an invalidation is not stored: a reader that fetched the old
  record just before a change committed would otherwise put it back just after the
  change was announced. Every load registers itself per device id, and an invalidation
  of that device (or ``clear``) while it is in flight voids it;
- expiry: an entry is used for at most ``ttl_seconds`` after its read began, so a notice
  that never arrived (another process, a bug) cannot keep a credential alive for long.

Memory is bounded: at most ``max_entries`` device plus module records; beyond that the
device entries loaded longest ago go first, with their modules. Thread-safe: loads run
outside the lock, so a slow store never blocks the hits of other connects.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from wellguard.model.device import Device, Module
from wellguard.model.policy import SharedAccessPolicy

__all__ = ["AuthRecordCache"]

DEFAULT_TTL_SECONDS = 30.0
DEFAULT_MAX_ENTRIES = 100_000


@dataclass
class _DeviceEntry:
    device: Device | None
    loaded: float
    modules: dict[str, tuple[Module | None, float]] = field(default_factory=dict)


@dataclass
class _Loads:
    """Loads of one device id in flight, and how many invalidations hit them."""

    running: int = 0
    invalidations: int = 0


class AuthRecordCache:
    """Device, module and policy records for authentication; see the module docstring."""

    def __init__(
        self,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._devices: OrderedDict[str, _DeviceEntry] = OrderedDict()
        self._size = 0  # device entries + module entries
        self._loads: dict[str, _Loads] = {}
        self._epoch = 0  # bumped by clear(): voids every load in flight
        self._policies: tuple[Mapping[str, SharedAccessPolicy], float] | None = None
        self._policy_epoch = 0

    def __len__(self) -> int:
        """Device and module records held (expired ones included until replaced)."""
        with self._lock:
            return self._size

    # -- reads ------------------------------------------------------------------------------

    def device(
        self, device_id: str, load: Callable[[str], Device | None], *, fresh: bool = False
    ) -> Device | None:
        """The device record (None: no such device), from ``load`` when not held or ``fresh``."""
        if not fresh:
            held, device = self.peek_device(device_id)
            if held:
                return device
        ticket, started = self._begin(device_id)
        try:
            device = load(device_id)
        except BaseException:
            self._abandon(device_id, ticket)
            raise
        with self._lock:
            if self._end(device_id, ticket) and _matches_device(device_id, device):
                self._put_device(device_id, device, started)
        return device

    def module(
        self,
        device_id: str,
        module_id: str,
        load: Callable[[str, str], Module | None],
        *,
        fresh: bool = False,
    ) -> Module | None:
        """The module record (None: no such module), held under its device's entry."""
        if not fresh:
            held, module = self.peek_module(device_id, module_id)
            if held:
                return module
        ticket, started = self._begin(device_id)
        try:
            module = load(device_id, module_id)
        except BaseException:
            self._abandon(device_id, ticket)
            raise
        with self._lock:
            if self._end(device_id, ticket) and _matches_module(device_id, module_id, module):
                self._put_module(device_id, module_id, module, started)
        return module

    def load_devices(
        self,
        device_ids: Collection[str],
        load_many: Callable[[Collection[str]], Mapping[str, Device]],
    ) -> None:
        """Read many device records at once and hold them (ids ``load_many`` does not
        return are held as "no such device"); the same race rules as ``device``."""
        wanted = sorted(set(device_ids))
        if not wanted:
            return
        tickets = [self._begin(device_id) for device_id in wanted]
        try:
            found = load_many(wanted)
        except BaseException:
            for device_id, (ticket, _) in zip(wanted, tickets, strict=True):
                self._abandon(device_id, ticket)
            raise
        with self._lock:
            for device_id, (ticket, started) in zip(wanted, tickets, strict=True):
                device = found.get(device_id)
                if self._end(device_id, ticket) and _matches_device(device_id, device):
                    self._put_device(device_id, device, started)

    def peek_device(self, device_id: str) -> tuple[bool, Device | None]:
        """(held, record) without loading: (False, None) when not held or expired."""
        with self._lock:
            entry = self._devices.get(device_id)
            if entry is not None and self._clock() - entry.loaded < self._ttl:
                return True, entry.device
        return False, None

    def peek_module(self, device_id: str, module_id: str) -> tuple[bool, Module | None]:
        """(held, record) without loading, as ``peek_device``."""
        with self._lock:
            entry = self._devices.get(device_id)
            held = entry.modules.get(module_id) if entry is not None else None
            if held is not None and self._clock() - held[1] < self._ttl:
                return True, held[0]
        return False, None

    def peek_policies(self) -> Mapping[str, SharedAccessPolicy] | None:
        """The policies when held and not expired, without loading."""
        with self._lock:
            held = self._policies
            if held is not None and self._clock() - held[1] < self._ttl:
                return held[0]
        return None

    def policies(
        self, load: Callable[[], Iterable[SharedAccessPolicy]], *, fresh: bool = False
    ) -> Mapping[str, SharedAccessPolicy]:
        """The shared access policies by name, from ``load`` when not held or ``fresh``."""
        with self._lock:
            held = self._policies
            if not fresh and held is not None and self._clock() - held[1] < self._ttl:
                return held[0]
            epoch = self._policy_epoch
            started = self._clock()
        loaded = MappingProxyType({p.name: p for p in load()})
        with self._lock:
            if epoch == self._policy_epoch:
                self._policies = (loaded, started)
        return loaded

    # -- invalidation -----------------------------------------------------------------------

    def forget_device(self, device_id: str) -> None:
        """Drop a device and its modules, and void their loads in flight."""
        with self._lock:
            entry = self._devices.pop(device_id, None)
            if entry is not None:
                self._size -= 1 + len(entry.modules)
            loads = self._loads.get(device_id)
            if loads is not None:
                loads.invalidations += 1

    def forget_policies(self) -> None:
        """Drop the policies, and void a load in flight."""
        with self._lock:
            self._policies = None
            self._policy_epoch += 1

    def clear(self) -> None:
        """Drop everything, and void every load in flight."""
        with self._lock:
            self._devices.clear()
            self._size = 0
            self._epoch += 1
            self._policies = None
            self._policy_epoch += 1

    # -- internals (callers hold no lock unless stated) --------------------------------------

    def _begin(self, device_id: str) -> tuple[tuple[int, int], float]:
        with self._lock:
            loads = self._loads.setdefault(device_id, _Loads())
            loads.running += 1
            return (self._epoch, loads.invalidations), self._clock()

    def _abandon(self, device_id: str, ticket: tuple[int, int]) -> None:
        with self._lock:
            self._end(device_id, ticket)

    def _end(self, device_id: str, ticket: tuple[int, int]) -> bool:
        """Unregister a load (lock held); True when nothing invalidated it meanwhile."""
        loads = self._loads[device_id]
        loads.running -= 1
        if loads.running == 0:
            del self._loads[device_id]
        return ticket == (self._epoch, loads.invalidations)

    def _put_device(self, device_id: str, device: Device | None, loaded: float) -> None:
        """Hold a device record (lock held); a reload starts without modules."""
        old = self._devices.pop(device_id, None)
        if old is not None:
            self._size -= 1 + len(old.modules)
        self._devices[device_id] = _DeviceEntry(device, loaded)
        self._size += 1
        self._evict()

    def _put_module(
        self, device_id: str, module_id: str, module: Module | None, loaded: float
    ) -> None:
        """Hold a module record under its device's entry (lock held), if that is held."""
        entry = self._devices.get(device_id)
        if entry is None or entry.device is None:
            return
        if module_id not in entry.modules:
            self._size += 1
        entry.modules[module_id] = (module, loaded)
        self._evict()

    def _evict(self) -> None:
        while self._size > self._max and self._devices:
            _, entry = self._devices.popitem(last=False)
            self._size -= 1 + len(entry.modules)


def _matches_device(device_id: str, device: Device | None) -> bool:
    # A record under another id (a store matching case-insensitively) is never held: the
    # notices for it name its own id and would not reach this key.
    return device is None or device.device_id == device_id


def _matches_module(device_id: str, module_id: str, module: Module | None) -> bool:
    return module is None or (module.device_id, module.module_id) == (device_id, module_id)
