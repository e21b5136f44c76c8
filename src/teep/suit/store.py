"""What the SUIT processor needs from the place components are kept.

The processor is sans-I/O: it reads and writes components only through a
:class:`ComponentStore`.  The device's simulated TEE implements it on disk;
:class:`MemoryComponentStore` implements it in memory for tests and tools.

A store changes only inside a transaction.  Everything written in a
transaction becomes visible at once when it commits, and nothing of it
remains when it is abandoned: a manifest that fails changes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

ComponentId = tuple[bytes, ...]
"""A SUIT_Component_Identifier: a sequence of byte strings."""


@dataclass(frozen=True)
class InstalledManifest:
    """A manifest the device holds, with what it installed."""

    manifest_component_id: ComponentId
    """The manifest's own component id (trust-domains suit-manifest-component-id)."""
    sequence_number: int
    """Its suit-manifest-sequence-number."""
    envelope: bytes
    """The envelope as received (original bytes)."""
    components: tuple[ComponentId, ...]
    """The components it installed."""


class StoreTransaction(Protocol):
    """Changes to a store that land together or not at all."""

    def read(self, component_id: ComponentId) -> bytes | None:
        """The component's current content in this transaction, if any."""

    def read_chunks(self, component_id: ComponentId) -> Iterator[bytes] | None:
        """The same content as :meth:`read`, in pieces, for content too large
        to hold at once.  A store that checks integrity may raise from the
        iterator, up to its last piece."""

    def write(self, component_id: ComponentId, chunks: Iterable[bytes]) -> None:
        """Replace the component's content with the concatenated chunks."""

    def unlink(self, component_id: ComponentId) -> None:
        """Remove the component (no error if absent)."""

    def record_manifest(self, manifest: InstalledManifest) -> None:
        """Remember a manifest (replacing one with the same id)."""

    def remove_manifest(self, manifest_component_id: ComponentId) -> None:
        """Forget a manifest (no error if absent)."""


class ComponentStore(Protocol):
    """Where a device keeps its Trusted Components and their manifests."""

    def manifests(self) -> list[InstalledManifest]:
        """Every manifest the device holds."""

    def manifest(self, manifest_component_id: ComponentId) -> InstalledManifest | None:
        """The manifest with this id, if held."""

    def read(self, component_id: ComponentId) -> bytes | None:
        """A component's committed content, if present."""

    def read_chunks(self, component_id: ComponentId) -> Iterator[bytes] | None:
        """A component's committed content in pieces (see
        :meth:`StoreTransaction.read_chunks`)."""

    def transaction(self) -> contextlib.AbstractContextManager[StoreTransaction]:
        """Open a transaction; it commits when the block ends without an
        exception and is abandoned otherwise."""


_Pieces = tuple[bytes, ...]


class MemoryComponentStore:
    """A :class:`ComponentStore` held in memory.

    Content is kept as the pieces it was written in: joining them would
    briefly need twice the memory, and a streaming reader does not need it.
    """

    def __init__(self) -> None:
        self._components: dict[ComponentId, _Pieces] = {}
        self._manifests: dict[ComponentId, InstalledManifest] = {}

    def manifests(self) -> list[InstalledManifest]:
        return list(self._manifests.values())

    def manifest(self, manifest_component_id: ComponentId) -> InstalledManifest | None:
        return self._manifests.get(manifest_component_id)

    def read(self, component_id: ComponentId) -> bytes | None:
        return _joined(self._components.get(component_id))

    def read_chunks(self, component_id: ComponentId) -> Iterator[bytes] | None:
        pieces = self._components.get(component_id)
        return None if pieces is None else iter(pieces)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[StoreTransaction]:
        txn = _MemoryTransaction(dict(self._components), dict(self._manifests))
        yield txn
        self._components = txn.components
        self._manifests = txn.manifests


class _MemoryTransaction:
    def __init__(
        self,
        components: dict[ComponentId, _Pieces],
        manifests: dict[ComponentId, InstalledManifest],
    ) -> None:
        self.components = components
        self.manifests = manifests

    def read(self, component_id: ComponentId) -> bytes | None:
        return _joined(self.components.get(component_id))

    def read_chunks(self, component_id: ComponentId) -> Iterator[bytes] | None:
        pieces = self.components.get(component_id)
        return None if pieces is None else iter(pieces)

    def write(self, component_id: ComponentId, chunks: Iterable[bytes]) -> None:
        self.components[component_id] = tuple(bytes(c) for c in chunks if c) or (b"",)

    def unlink(self, component_id: ComponentId) -> None:
        self.components.pop(component_id, None)

    def record_manifest(self, manifest: InstalledManifest) -> None:
        self.manifests[manifest.manifest_component_id] = manifest

    def remove_manifest(self, manifest_component_id: ComponentId) -> None:
        self.manifests.pop(manifest_component_id, None)


def _joined(pieces: _Pieces | None) -> bytes | None:
    if pieces is None:
        return None
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)
