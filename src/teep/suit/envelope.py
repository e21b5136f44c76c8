"""SUIT_Envelope and SUIT_Manifest: a strict decoder that keeps the bytes.

Everything a signature or digest covers is kept exactly as received:
:attr:`SuitEnvelope.manifest_bytes` is the bstr-wrapped manifest (header
included, which is what the manifest digest covers), and each command
sequence keeps its own bytes so that report offsets point into them.

Decoding goes through :func:`teep.cbor.loads`; every malformation becomes a
:class:`SuitDecodeError`.  Decoding is not trusting: :func:`open_envelope`
(used by the processor) checks the authentication wrapper before it even
parses the manifest, as draft-ietf-suit-manifest section 8.3 requires.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, overload

from teep import cbor, cose
from teep.errors import DecodeError, VerifyError
from teep.keys import PublicKey
from teep.suit.errors import (
    SuitAuthError,
    SuitDecodeError,
    SuitSeveredMemberError,
    SuitUnsupportedError,
)
from teep.suit.registry import (
    ENVELOPE_TAG,
    SEVERABLE,
    SuitCommonKey,
    SuitDependencyKey,
    SuitDigestAlgorithm,
    SuitEnvelopeKey,
    SuitManifestKey,
    SuitReportReason,
)
from teep.suit.store import ComponentId

__all__ = [
    "Authenticator",
    "SuitCommand",
    "SuitCommandSequence",
    "SuitCommon",
    "SuitDigest",
    "SuitEnvelope",
    "SuitManifest",
    "component_id_of",
    "open_envelope",
    "verify_envelope",
]

_TAGS = frozenset({ENVELOPE_TAG})
_HASHES = {
    SuitDigestAlgorithm.sha_256: lambda d: hashlib.sha256(d).digest(),
    SuitDigestAlgorithm.sha_384: lambda d: hashlib.sha384(d).digest(),
    SuitDigestAlgorithm.sha_512: lambda d: hashlib.sha512(d).digest(),
    SuitDigestAlgorithm.shake128: lambda d: hashlib.shake_128(d).digest(32),
    SuitDigestAlgorithm.shake256: lambda d: hashlib.shake_256(d).digest(64),
}


def _loads(data: bytes, what: str, tags: frozenset[int] = frozenset()) -> Any:
    try:
        return cbor.loads(data, tags=tags)
    except DecodeError as exc:
        raise SuitDecodeError(f"{what}: {exc}") from None


def _bstr_header(length: int) -> bytes:
    return cbor.dumps(b"\x00" * length)[:-length] if length else b"\x40"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def component_id_of(value: Any, what: str = "component identifier") -> ComponentId:
    """Check a decoded SUIT_Component_Identifier (``[* bstr]``) and return it.

    :raises SuitDecodeError: if it is not an array of byte strings.
    """
    if not isinstance(value, list | tuple) or not all(
        isinstance(part, bytes) for part in value
    ):
        raise SuitDecodeError(f"{what} must be an array of byte strings")
    return tuple(value)


@dataclass(frozen=True)
class SuitDigest:
    """A SUIT_Digest: ``[algorithm-id, digest-bytes, * extensions]``."""

    algorithm: int
    """The COSE hash algorithm id (SuitDigestAlgorithm when known)."""
    value: bytes
    """The digest bytes."""

    @classmethod
    def of(
        cls, data: bytes, algorithm: SuitDigestAlgorithm = SuitDigestAlgorithm.sha_256
    ) -> SuitDigest:
        """The digest of ``data`` with ``algorithm``."""
        return cls(int(algorithm), _HASHES[algorithm](data))

    @classmethod
    def from_cbor(cls, value: Any) -> SuitDigest:
        """Check a decoded SUIT_Digest.

        :raises SuitDecodeError: if malformed.
        """
        if (
            not isinstance(value, list)
            or len(value) < 2
            or not _is_int(value[0])
            or not isinstance(value[1], bytes)
        ):
            raise SuitDecodeError("SUIT_Digest must be [int, bstr, ...]")
        return cls(value[0], value[1])

    @classmethod
    def decode(cls, data: bytes) -> SuitDigest:
        """Decode an encoded SUIT_Digest (the content of a ``bstr .cbor``).

        :raises SuitDecodeError: if malformed.
        """
        return cls.from_cbor(_loads(data, "SUIT_Digest"))

    def to_cbor(self) -> list[Any]:
        """The SUIT_Digest as a CBOR-ready list."""
        return [self.algorithm, self.value]

    def encode(self) -> bytes:
        """The encoded SUIT_Digest."""
        return cbor.dumps(self.to_cbor())

    def hash(self, data: bytes) -> bytes:
        """Hash ``data`` with this digest's algorithm.

        :raises SuitUnsupportedError: for an unknown algorithm.
        """
        try:
            return _HASHES[SuitDigestAlgorithm(self.algorithm)](data)
        except ValueError:
            raise SuitUnsupportedError(
                f"digest algorithm {self.algorithm}",
                reason=SuitReportReason.alg_unsupported,
            ) from None

    def matches(self, data: bytes) -> bool:
        """Whether ``data`` hashes to this digest (constant-time compare).

        :raises SuitUnsupportedError: for an unknown algorithm.
        """
        return hmac.compare_digest(self.hash(data), self.value)


@dataclass(frozen=True)
class SuitCommand:
    """One ``label, argument`` pair of a command sequence."""

    label: int
    """The command label (SuitCommand when known; negative = custom)."""
    argument: Any
    """The argument as decoded."""
    offset: int
    """Byte offset of the label within the sequence's encoding."""


@dataclass(frozen=True)
class SuitCommandSequence:
    """A decoded SUIT_Command_Sequence that keeps its own encoding."""

    raw: bytes
    """The encoded array (the content of the ``bstr .cbor``)."""
    commands: tuple[SuitCommand, ...]
    """The commands in order."""

    @classmethod
    def decode(cls, raw: bytes) -> SuitCommandSequence:
        """Decode a sequence: an array of ``int, argument`` pairs.

        Offsets count from the start of ``raw`` (the array header
        included), the convention teep uses in SUIT_Record.

        :raises SuitDecodeError: if malformed.
        """
        value = _loads(raw, "command sequence")
        if not isinstance(value, list) or not value or len(value) % 2:
            raise SuitDecodeError("a command sequence is a non-empty array of pairs")
        offsets = _item_offsets(raw)
        commands = []
        for i in range(0, len(value), 2):
            if not _is_int(value[i]):
                raise SuitDecodeError(f"command label at item {i} is not an integer")
            commands.append(SuitCommand(value[i], value[i + 1], offsets[i]))
        return cls(raw, tuple(commands))

    def to_cbor(self) -> list[Any]:
        """The flat ``[label, argument, ...]`` list."""
        return [x for c in self.commands for x in (c.label, c.argument)]


def _item_offsets(raw: bytes) -> list[int]:
    # The scanner only walks well-formed input, which loads() has checked.
    scanner = cbor._Scanner(raw, cbor.DEFAULT_LIMITS)
    _major, _info, count = scanner.head()
    offsets = []
    for _ in range(count or 0):
        offsets.append(scanner.pos)
        scanner.item(1)
    return offsets


def _map_members(data: bytes) -> tuple[bool, list[tuple[Any, bytes]]]:
    """Split an encoded (optionally tagged) map into keys and raw values."""
    scanner = cbor._Scanner(data, cbor.DEFAULT_LIMITS, _TAGS)
    major, _info, arg = scanner.head()
    tagged = major == 6
    if tagged:
        major, _info, arg = scanner.head()
    members = []
    for _ in range(arg or 0):
        start = scanner.pos
        scanner.item(1)
        key = cbor.loads(data[start : scanner.pos])
        start = scanner.pos
        scanner.item(1)
        members.append((key, data[start : scanner.pos]))
    return tagged, members


@dataclass(frozen=True)
class SuitCommon:
    """SUIT_Common: the components and the shared sequence."""

    components: tuple[ComponentId, ...]
    """suit-components, in index order."""
    dependencies: Mapping[int, ComponentId | None]
    """TD suit-dependencies: component index -> dependency-prefix (if any)."""
    shared_sequence: SuitCommandSequence | None
    """suit-shared-sequence, if present."""

    @classmethod
    def decode(cls, raw: bytes) -> SuitCommon:
        """Decode the content of the suit-common bstr.

        :raises SuitDecodeError: if malformed.
        """
        value = _loads(raw, "suit-common")
        if not isinstance(value, dict):
            raise SuitDecodeError("suit-common must be a map")
        comps = value.get(SuitCommonKey.components, [])
        if not isinstance(comps, list):
            raise SuitDecodeError("suit-components must be an array")
        shared = value.get(SuitCommonKey.shared_sequence)
        if shared is not None and not isinstance(shared, bytes):
            raise SuitDecodeError("suit-shared-sequence must be a byte string")
        return cls(
            tuple(component_id_of(c) for c in comps),
            _dependencies(value.get(SuitCommonKey.dependencies, {})),
            SuitCommandSequence.decode(shared) if shared is not None else None,
        )

    def component_ids(self) -> list[ComponentId]:
        """The whole index space: components, then dependencies beyond them.

        A dependency listed at an index past ``components`` (the layout of
        every TD example) takes its dependency-prefix as its id.
        """
        ids = list(self.components)
        top = max(self.dependencies, default=-1) + 1
        ids.extend(() for _ in range(len(ids), top))
        for index, prefix in self.dependencies.items():
            if index >= len(self.components) and prefix is not None:
                ids[index] = prefix
        return ids


def _dependencies(value: Any) -> dict[int, ComponentId | None]:
    if not isinstance(value, dict):
        raise SuitDecodeError("suit-dependencies must be a map")
    result: dict[int, ComponentId | None] = {}
    for index, meta in value.items():
        if not _is_int(index) or index < 0 or index > 0xFFFF:
            raise SuitDecodeError("a dependency index must be a small uint")
        if not isinstance(meta, dict):
            raise SuitDecodeError("SUIT_Dependency_Metadata must be a map")
        prefix = meta.get(SuitDependencyKey.dependency_prefix)
        result[index] = None if prefix is None else component_id_of(prefix)
    return result


@dataclass(frozen=True)
class SuitManifest:
    """A decoded SUIT_Manifest."""

    raw: bytes
    """The encoded manifest map (content of envelope key 3)."""
    version: int
    """suit-manifest-version (always 1)."""
    sequence_number: int
    """suit-manifest-sequence-number."""
    common: SuitCommon
    """suit-common."""
    reference_uri: str | None
    """suit-reference-uri."""
    manifest_component_id: ComponentId | None
    """TD suit-manifest-component-id."""
    sequences: Mapping[int, SuitCommandSequence]
    """Command sequences present inline, by SuitManifestKey."""
    severed: Mapping[int, SuitDigest]
    """Severable members replaced by their digest, by SuitManifestKey."""
    text: bytes | None
    """The encoded SUIT_Text_Map, when inline."""

    @classmethod
    def decode(cls, raw: bytes) -> SuitManifest:
        """Decode the content of the suit-manifest bstr.

        :raises SuitDecodeError: if malformed.
        :raises SuitUnsupportedError: for a manifest version other than 1.
        """
        value = _loads(raw, "suit-manifest")
        if not isinstance(value, dict):
            raise SuitDecodeError("suit-manifest must be a map")
        version = value.get(SuitManifestKey.manifest_version)
        # manifest section 8.4.1: a processor rejects any other version.
        if version != 1 or isinstance(version, bool):
            raise SuitUnsupportedError(f"manifest version {version!r}")
        seq = value.get(SuitManifestKey.manifest_sequence_number)
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise SuitDecodeError("suit-manifest-sequence-number must be a uint")
        common = value.get(SuitManifestKey.common)
        if not isinstance(common, bytes):
            raise SuitDecodeError("suit-common must be a byte string")
        uri = value.get(SuitManifestKey.reference_uri)
        if uri is not None and not isinstance(uri, str):
            raise SuitDecodeError("suit-reference-uri must be a text string")
        mcid = value.get(SuitManifestKey.manifest_component_id)
        sequences, severed, text = _members(value)
        return cls(
            raw=raw,
            version=1,
            sequence_number=seq,
            common=SuitCommon.decode(common),
            reference_uri=uri,
            manifest_component_id=(
                None if mcid is None else component_id_of(mcid, "manifest-component-id")
            ),
            sequences=sequences,
            severed=severed,
            text=text,
        )


_SEQUENCE_KEYS = frozenset(SuitManifestKey) - {
    SuitManifestKey.manifest_version,
    SuitManifestKey.manifest_sequence_number,
    SuitManifestKey.common,
    SuitManifestKey.reference_uri,
    SuitManifestKey.manifest_component_id,
    SuitManifestKey.text,
}


def _members(
    value: dict[Any, Any],
) -> tuple[dict[int, SuitCommandSequence], dict[int, SuitDigest], bytes | None]:
    sequences: dict[int, SuitCommandSequence] = {}
    severed: dict[int, SuitDigest] = {}
    text = None
    for key, member in value.items():
        if key not in _SEQUENCE_KEYS and key != SuitManifestKey.text:
            continue  # extension sockets: unknown members are ignored
        if isinstance(member, list) and key in SEVERABLE:
            severed[key] = SuitDigest.from_cbor(member)
        elif not isinstance(member, bytes):
            raise SuitDecodeError(f"manifest member {key} must be a byte string")
        elif key == SuitManifestKey.text:
            text = member
        else:
            sequences[key] = SuitCommandSequence.decode(member)
    return sequences, severed, text


@dataclass(frozen=True)
class SuitEnvelope:
    """A decoded SUIT_Envelope, with the original bytes of every member."""

    raw: bytes
    """The envelope exactly as received."""
    tagged: bool
    """Whether it carried tag 107."""
    authentication_wrapper: bytes
    """The content of the suit-authentication-wrapper bstr."""
    manifest_bytes: bytes
    """The bstr-wrapped manifest as received (what the digest covers)."""
    manifest: SuitManifest
    """The decoded manifest."""
    severable: Mapping[int, bytes] = field(default_factory=dict)
    """Severed members carried in the envelope, bstr-wrapped as received."""
    integrated: Mapping[str, bytes] = field(default_factory=dict)
    """Integrated payloads and dependencies, by their ``#name`` key."""

    @classmethod
    def decode(cls, data: bytes) -> SuitEnvelope:
        """Decode an envelope, tagged (107) or not, without verifying it.

        :raises SuitDecodeError: if malformed (including a severed member
            whose digest does not match).
        :raises SuitUnsupportedError: for a manifest version other than 1.
        """
        outer = _Outer.decode(data)
        return outer.with_manifest(SuitManifest.decode(outer.manifest_content))

    @property
    def digest(self) -> SuitDigest:
        """The manifest digest claimed by the authentication wrapper.

        :raises SuitDecodeError: if the wrapper is malformed.
        """
        return _auth_parts(self.authentication_wrapper)[0]

    @property
    def authentication_blocks(self) -> list[bytes]:
        """The wrapper's COSE blocks (signatures or MACs), as encoded.

        :raises SuitDecodeError: if the wrapper is malformed.
        """
        return _auth_parts(self.authentication_wrapper)[2]

    def sequence(self, key: int) -> SuitCommandSequence | None:
        """The command sequence ``key``, inline or severed, None if absent.

        :raises SuitSeveredMemberError: if it was severed and the envelope
            does not carry it (manifest 8.4.1 / the SUIT digest 9.1 step 6:
            a member the procedure needs but cannot get fails it).
        """
        found = self.manifest.sequences.get(key)
        if found is not None or key not in self.manifest.severed:
            return found
        member = self.severable.get(key)
        if member is None:
            raise SuitSeveredMemberError(
                f"manifest member {key} is severed and not in the envelope"
            )
        return SuitCommandSequence.decode(_unwrap(member))

    def encode(self) -> bytes:
        """Re-encode the envelope deterministically from its parts."""
        members: dict[Any, Any] = {
            SuitEnvelopeKey.authentication_wrapper: self.authentication_wrapper,
            SuitEnvelopeKey.manifest: _unwrap(self.manifest_bytes),
        }
        members.update({k: _unwrap(v) for k, v in self.severable.items()})
        members.update(self.integrated)
        value = {int(k) if _is_int(k) else k: v for k, v in members.items()}
        if self.tagged:
            return cbor.dumps(cbor.CBORTag(ENVELOPE_TAG, _det(value)))
        return cbor.det_dumps(value)


def _det(value: dict[Any, Any]) -> dict[Any, Any]:
    return dict(sorted(value.items(), key=lambda kv: cbor.dumps(kv[0])))


def _unwrap(wrapped: bytes) -> bytes:
    value = _loads(wrapped, "bstr member")
    if not isinstance(value, bytes):
        raise SuitDecodeError("expected a byte string")
    return value


@dataclass(frozen=True)
class _Outer:
    raw: bytes
    tagged: bool
    auth: bytes
    manifest_bytes: bytes
    manifest_content: bytes
    severable: dict[int, bytes]
    integrated: dict[str, bytes]

    @classmethod
    def decode(cls, data: bytes) -> _Outer:
        value = _loads(data, "SUIT_Envelope", _TAGS)
        if isinstance(value, cbor.CBORTag):
            value = value.value
        if not isinstance(value, dict):
            raise SuitDecodeError("SUIT_Envelope must be a map")
        tagged, members = _map_members(bytes(data))
        severable: dict[int, bytes] = {}
        integrated: dict[str, bytes] = {}
        auth = manifest = None
        for key, raw in members:
            if key == SuitEnvelopeKey.authentication_wrapper:
                auth = raw
            elif key == SuitEnvelopeKey.manifest:
                manifest = raw
            elif isinstance(key, str):
                integrated[key] = _bytes(value[key], key)
            elif _is_int(key) and key in SEVERABLE:
                severable[key] = raw
        if auth is None or manifest is None:
            raise SuitDecodeError("an envelope needs an auth wrapper and a manifest")
        return cls(
            bytes(data),
            tagged,
            _bytes(value[SuitEnvelopeKey.authentication_wrapper], "auth"),
            manifest,
            _bytes(value[SuitEnvelopeKey.manifest], "manifest"),
            severable,
            integrated,
        )

    def with_manifest(self, manifest: SuitManifest) -> SuitEnvelope:
        for key, member in self.severable.items():
            digest = manifest.severed.get(key)
            # manifest section 8.5: a severed member is used only if it
            # matches the digest the signed manifest holds for it.
            if digest is not None and not digest.matches(member):
                raise SuitAuthError(f"severed member {key} does not match its digest")
        return SuitEnvelope(
            raw=self.raw,
            tagged=self.tagged,
            authentication_wrapper=self.auth,
            manifest_bytes=self.manifest_bytes,
            manifest=manifest,
            severable=self.severable,
            integrated=self.integrated,
        )


def _bytes(value: Any, key: Any) -> bytes:
    if not isinstance(value, bytes):
        raise SuitDecodeError(f"envelope member {key!r} must be a byte string")
    return value


def _auth_parts(auth: bytes) -> tuple[SuitDigest, bytes, list[Any]]:
    value = _loads(auth, "SUIT_Authentication")
    if not isinstance(value, list) or not value:
        raise SuitDecodeError("SUIT_Authentication must be a non-empty array")
    if not all(isinstance(item, bytes) for item in value):
        raise SuitDecodeError("SUIT_Authentication members must be byte strings")
    return SuitDigest.decode(value[0]), value[0], value[1:]


Authenticator = PublicKey | cose.MACKey
"""What authenticated an envelope: a signer's public key, or a shared MAC key."""


def _verify_auth(
    auth: bytes,
    manifest_bytes: bytes,
    trust_anchors: Iterable[PublicKey],
    mac_keys: Iterable[cose.MACKey] = (),
) -> Authenticator:
    digest, digest_bytes, blocks = _auth_parts(auth)
    # manifest section 8.3: check the digest first, then a signature over it.
    if not digest.matches(manifest_bytes):
        raise SuitAuthError("the manifest does not match the authentication digest")
    if not blocks:
        raise SuitAuthError("the envelope carries no authentication block")
    anchors = list(trust_anchors)
    shared = list(mac_keys)
    failure: Exception = SuitAuthError("no authentication block verifies")
    for block in blocks:
        tag = cbor.peek_tag(block)
        if tag == cose.COSETag.COSE_Mac0 and shared:
            # manifest 8.3: a COSE_Mac0 over the same detached SUIT_Digest,
            # with a key the device shares with the author (the
            # firmware-encryption AES-KW examples, HMAC 256/256).
            try:
                return cose.verify_mac0(block, shared, detached_payload=digest_bytes)
            except DecodeError as exc:
                failure = SuitDecodeError(f"authentication block: {exc}")
            except VerifyError as exc:
                failure = SuitAuthError(f"authentication block: {exc}")
            continue
        if tag not in (cose.COSETag.COSE_Sign1, cose.COSETag.COSE_Sign):
            failure = SuitUnsupportedError(
                f"authentication block with CBOR tag {tag}",
                reason=SuitReportReason.cose_unsupported,
            )
            continue
        try:
            return cose.verify(block, anchors, detached_payload=digest_bytes).key
        except DecodeError as exc:
            failure = SuitDecodeError(f"authentication block: {exc}")
        except VerifyError as exc:
            failure = SuitAuthError(f"authentication block: {exc}")
    raise failure


@overload
def verify_envelope(
    env: SuitEnvelope, trust_anchors: Iterable[PublicKey]
) -> PublicKey: ...
@overload
def verify_envelope(
    env: SuitEnvelope,
    trust_anchors: Iterable[PublicKey],
    *,
    mac_keys: Iterable[cose.MACKey],
) -> Authenticator: ...
def verify_envelope(
    env: SuitEnvelope,
    trust_anchors: Iterable[PublicKey],
    *,
    mac_keys: Iterable[cose.MACKey] = (),
) -> Authenticator:
    """Check the envelope's authentication wrapper and return the signer.

    The SUIT_Digest must equal the hash of the bstr-wrapped manifest, and at
    least one COSE_Sign1 / COSE_Sign block (detached payload: the encoded
    SUIT_Digest) must verify under one of ``trust_anchors``, or a COSE_Mac0
    block under one of ``mac_keys``.

    :raises SuitAuthError: if the digest or every signature fails.
    :raises SuitDecodeError: if the wrapper is malformed.
    :raises SuitUnsupportedError: for a block teep cannot check (COSE_Mac,
        or COSE_Mac0 without ``mac_keys``) or an unknown digest algorithm.
    """
    return _verify_auth(
        env.authentication_wrapper, env.manifest_bytes, trust_anchors, mac_keys
    )


@overload
def open_envelope(
    data: bytes, trust_anchors: Iterable[PublicKey]
) -> tuple[SuitEnvelope, PublicKey]: ...
@overload
def open_envelope(
    data: bytes, trust_anchors: Iterable[PublicKey], *, mac_keys: Iterable[cose.MACKey]
) -> tuple[SuitEnvelope, Authenticator]: ...
def open_envelope(
    data: bytes,
    trust_anchors: Iterable[PublicKey],
    *,
    mac_keys: Iterable[cose.MACKey] = (),
) -> tuple[SuitEnvelope, Authenticator]:
    """Decode and authenticate an envelope, verifying before the manifest
    is parsed.

    :param mac_keys: shared keys for COSE_Mac0 authentication blocks.
    :returns: the envelope and the key that verified it.
    :raises SuitDecodeError, SuitAuthError, SuitUnsupportedError: as
        :meth:`SuitEnvelope.decode` and :func:`verify_envelope`.
    """
    outer = _Outer.decode(data)
    signer = _verify_auth(outer.auth, outer.manifest_bytes, trust_anchors, mac_keys)
    return outer.with_manifest(SuitManifest.decode(outer.manifest_content)), signer
