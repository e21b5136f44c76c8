"""Build and sign SUIT envelopes (the TAM's and the tools' side).

:func:`build_envelope` writes the manifest a TEEP TAM needs for one Trusted
Component, in the shape of the TEEP Protocol's Appendix E examples: the
shared sequence sets vendor/class ids, the image digest and size and checks
the ids; install fetches the payload (by URI, or from the envelope itself
under ``#name``) and checks image-match; validate checks image-match again;
uninstall unlinks the component.  Everything is encoded with RFC 8949
deterministic ordering, as draft-ietf-suit-manifest section 8.1 requires.

An encrypted payload follows draft-ietf-suit-firmware-encryption's "decrypt
on copy" pattern: install fetches the ciphertext into a staging component,
copies it into the real one with encryption-info set (the device decrypts),
checks the plaintext digest and unlinks the staging component.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from teep import cbor, cose
from teep.errors import DecodeError
from teep.keys import COSEAlgorithm, PrivateKey
from teep.suit.encryption import EncryptionRecipient, encrypt_payload
from teep.suit.envelope import SuitDigest, SuitEnvelope, _loads
from teep.suit.errors import SuitDecodeError, SuitError
from teep.suit.registry import (
    ENVELOPE_TAG,
    MANIFEST_TAG,
    SEVERABLE,
    SuitCommand,
    SuitCommonKey,
    SuitDependencyKey,
    SuitEnvelopeKey,
    SuitManifestKey,
    SuitParameter,
    SuitReportingPolicy,
)
from teep.suit.store import ComponentId

__all__ = [
    "MAX_SEQUENCE_NUMBER",
    "REPORT_ALL",
    "STAGING_SUFFIX",
    "ComponentSpec",
    "DependencySpec",
    "build_envelope",
    "build_manifest",
    "compose_manifest",
    "encode_sequence",
    "envelope_of",
    "sever_envelope",
    "sign_envelope",
]

REPORT_ALL = int(SuitReportingPolicy(15))
"""The reporting policy the examples use on every condition."""
_RECORD_ON_FAILURE = int(SuitReportingPolicy.send_record_on_failure)
STAGING_SUFFIX = b"encrypted"
"""Last element of the staging component an encrypted payload is fetched to."""
MAX_SEQUENCE_NUMBER = 2**63 - 1
"""The largest suit-manifest-sequence-number teep writes (a uint that every
CBOR decoder reads as a 64-bit integer, never a bignum)."""


def encode_sequence(*commands: tuple[int, Any]) -> bytes:
    """Encode ``(label, argument)`` pairs as a SUIT_Command_Sequence."""
    flat = [x for label, arg in commands for x in (int(label), arg)]
    return cbor.det_dumps(flat)


@dataclass(frozen=True)
class ComponentSpec:
    """One component a composed manifest installs."""

    component_id: ComponentId
    """Where it is installed."""
    payload: bytes
    """The plaintext (its digest and size go in the manifest)."""
    uri: str
    """Where fetch finds it (``#name``: integrated in the envelope)."""
    vendor_id: bytes | None = None
    """suit-parameter-vendor-identifier to check, if any."""
    class_id: bytes | None = None
    """suit-parameter-class-identifier to check, if any."""
    encryption_info: bytes | None = None
    """SUIT_Encryption_Info when ``uri`` serves a ciphertext."""


@dataclass(frozen=True)
class DependencySpec:
    """A manifest the composed one depends on (trust-domains)."""

    manifest_component_id: ComponentId
    """The dependency's own manifest-component-id (its dependency-prefix)."""
    envelope: bytes
    """The dependency's envelope, as the device will fetch it."""
    uri: str
    """Where the device fetches it (``#name``: integrated)."""


def _ints(params: Mapping[int, Any]) -> dict[int, Any]:
    return {int(k): v for k, v in params.items()}


Commands = list[tuple[int, Any]]


def _identity(spec: ComponentSpec) -> Commands:
    params: dict[int, Any] = {
        SuitParameter.image_digest: SuitDigest.of(spec.payload).encode(),
        SuitParameter.image_size: len(spec.payload),
    }
    checks: Commands = []
    if spec.vendor_id is not None:
        params[SuitParameter.vendor_identifier] = spec.vendor_id
        checks.append((SuitCommand.condition_vendor_identifier, REPORT_ALL))
    if spec.class_id is not None:
        params[SuitParameter.class_identifier] = spec.class_id
        checks.append((SuitCommand.condition_class_identifier, REPORT_ALL))
    return [(SuitCommand.directive_override_parameters, _ints(params)), *checks]


class _Layout:
    """Component indices: the components, their staging slots, a dependency."""

    def __init__(
        self, specs: Sequence[ComponentSpec], dependency: DependencySpec | None
    ) -> None:
        self.specs = list(specs)
        self.ids = [list(s.component_id) for s in specs]
        self.staging: dict[int, int] = {}
        for index, spec in enumerate(specs):
            if spec.encryption_info is not None:
                self.staging[index] = len(self.ids)
                self.ids.append([*spec.component_id, STAGING_SUFFIX])
        # trust-domains 5.1: the dependency's index follows the components
        # and is not listed among them, as in every example of the drafts.
        self.dependency = len(self.ids) if dependency is not None else None
        self.count = len(self.ids) + (dependency is not None)

    def select(self, index: int) -> Commands:
        # manifest 8.4.10.1: with more than one component every sequence
        # chooses one first; with a single component the index is 0.
        if self.count == 1:
            return []
        return [(SuitCommand.directive_set_component_index, index)]

    def each(self, *commands: tuple[int, Any]) -> Commands:
        """``commands`` for every (non-staging) component in turn."""
        out: Commands = []
        for index in range(len(self.specs)):
            out += [*self.select(index), *commands]
        return out


def _fetch_component(layout: _Layout, index: int, spec: ComponentSpec) -> Commands:
    fetch: Commands = [
        (SuitCommand.directive_override_parameters, {int(SuitParameter.uri): spec.uri}),
        (SuitCommand.directive_fetch, _RECORD_ON_FAILURE),
    ]
    match = (SuitCommand.condition_image_match, REPORT_ALL)
    staging = layout.staging.get(index)
    if staging is None:
        return [*layout.select(index), *fetch, match]
    decrypt = {
        int(SuitParameter.encryption_info): spec.encryption_info,
        int(SuitParameter.source_component): staging,
    }
    # firmware-encryption 8: copy decrypts into the real component; the
    # ciphertext's staging component goes once the plaintext matched.
    return [
        *layout.select(staging),
        *fetch,
        *layout.select(index),
        (SuitCommand.directive_override_parameters, decrypt),
        (SuitCommand.directive_copy, _RECORD_ON_FAILURE),
        match,
        *layout.select(staging),
        (SuitCommand.directive_unlink, _RECORD_ON_FAILURE),
    ]


def _install(layout: _Layout) -> bytes:
    out: Commands = []
    if layout.dependency is not None:
        out += [
            *layout.select(layout.dependency),
            (SuitCommand.directive_process_dependency, REPORT_ALL),
        ]
    for index, spec in enumerate(layout.specs):
        out += _fetch_component(layout, index, spec)
    return encode_sequence(*out)


def _dependency_resolution(index: int, dependency: DependencySpec) -> bytes:
    digest = SuitEnvelope.decode(dependency.envelope).digest
    params: dict[int, Any] = {
        SuitParameter.image_digest: digest.encode(),
        SuitParameter.image_size: len(dependency.envelope),
        SuitParameter.uri: dependency.uri,
    }
    return encode_sequence(
        (SuitCommand.directive_set_component_index, index),
        (SuitCommand.directive_override_parameters, _ints(params)),
        (SuitCommand.directive_fetch, _RECORD_ON_FAILURE),
        (SuitCommand.condition_dependency_integrity, REPORT_ALL),
    )


def _check_sequence_number(value: int) -> None:
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not 0 <= value <= MAX_SEQUENCE_NUMBER
    ):
        raise SuitError(
            f"sequence number {value!r} is out of range: "
            f"give an integer from 0 to {MAX_SEQUENCE_NUMBER}"
        )


def _check_integrated_uris(
    components: Sequence[ComponentSpec], dependency: DependencySpec | None
) -> None:
    # The envelope holds one payload per #name: two users of one name
    # would make the device fetch the wrong bytes for one of them.
    uris = [spec.uri for spec in components]
    uris += [dependency.uri] if dependency is not None else []
    seen: set[str] = set()
    for uri in uris:
        if uri.startswith("#"):
            if uri in seen:
                raise SuitError(
                    f"integrated payload {uri!r} is named twice: "
                    "give each integrated payload its own #name"
                )
            seen.add(uri)


def compose_manifest(
    *,
    manifest_component_id: ComponentId,
    sequence_number: int,
    components: Sequence[ComponentSpec],
    dependency: DependencySpec | None = None,
    text: Mapping[str, Mapping[Any, Any]] | None = None,
    reference_uri: str | None = None,
) -> bytes:
    """Encode a SUIT_Manifest installing several components, optionally
    after a dependency (e.g. Personalization Data after its TA manifest).

    Shared: per component, its ids, digest and size, and the id checks.
    Dependency-resolution: fetch the dependency, check its integrity.
    Install: process the dependency, then fetch each component (through a
    staging component and a decrypting copy when encrypted) and check its
    digest.  Validate: every image-match again.  Uninstall: unlink the
    components, never the dependency, which has a life of its own.

    :returns: the encoded manifest map (not bstr-wrapped).
    :raises ValueError: if there is no component.
    :raises SuitError: if ``sequence_number`` is not in 0..2^63-1, or two
        payloads (components, the dependency) share one integrated ``#name``.
    :raises SuitDecodeError: if the dependency's envelope is malformed.
    """
    if not components:
        raise ValueError("a manifest needs at least one component")
    _check_sequence_number(sequence_number)
    _check_integrated_uris(components, dependency)
    layout = _Layout(components, dependency)
    shared: Commands = []
    for index, spec in enumerate(components):
        shared += [*layout.select(index), *_identity(spec)]
    common: dict[int, Any] = {
        SuitCommonKey.components: layout.ids,
        SuitCommonKey.shared_sequence: encode_sequence(*shared),
    }
    match = (SuitCommand.condition_image_match, REPORT_ALL)
    manifest: dict[int, Any] = {
        SuitManifestKey.manifest_version: 1,
        SuitManifestKey.manifest_sequence_number: sequence_number,
        SuitManifestKey.manifest_component_id: list(manifest_component_id),
        SuitManifestKey.validate: encode_sequence(*layout.each(match)),
        SuitManifestKey.install: _install(layout),
        SuitManifestKey.uninstall: encode_sequence(
            *layout.each((SuitCommand.directive_unlink, REPORT_ALL))
        ),
    }
    if dependency is not None and layout.dependency is not None:
        prefix = list(dependency.manifest_component_id)
        common[SuitCommonKey.dependencies] = {
            layout.dependency: {int(SuitDependencyKey.dependency_prefix): prefix}
        }
        manifest[SuitManifestKey.dependency_resolution] = _dependency_resolution(
            layout.dependency, dependency
        )
    manifest[SuitManifestKey.common] = cbor.det_dumps(_ints(common))
    if reference_uri is not None:
        manifest[SuitManifestKey.reference_uri] = reference_uri
    if text is not None:
        manifest[SuitManifestKey.text] = cbor.det_dumps(dict(text))
    return cbor.det_dumps(_ints(manifest))


def build_manifest(
    *,
    manifest_component_id: ComponentId,
    component_id: ComponentId,
    payload: bytes,
    sequence_number: int,
    vendor_id: bytes | None = None,
    class_id: bytes | None = None,
    uri: str,
    text: Mapping[str, Mapping[Any, Any]] | None = None,
    reference_uri: str | None = None,
    encryption_info: bytes | None = None,
) -> bytes:
    """Encode a SUIT_Manifest that installs ``payload`` into ``component_id``
    (:func:`compose_manifest` with one component).

    :param payload: the plaintext (its digest and size go in the manifest).
    :param uri: where fetch finds the payload (``#name`` = integrated), or
        its ciphertext when ``encryption_info`` is given.
    :param text: a SUIT_Text_Map (language tag -> text keys), kept inline.
    :param encryption_info: a SUIT_Encryption_Info for the fetched
        ciphertext (see :func:`teep.suit.encryption.encrypt_payload`).
    :returns: the encoded manifest map (not bstr-wrapped).
    """
    spec = ComponentSpec(
        component_id, payload, uri, vendor_id, class_id, encryption_info
    )
    return compose_manifest(
        manifest_component_id=manifest_component_id,
        sequence_number=sequence_number,
        components=[spec],
        text=text,
        reference_uri=reference_uri,
    )


def build_envelope(
    *,
    manifest_component_id: ComponentId,
    component_id: ComponentId,
    payload: bytes,
    sequence_number: int,
    signer: PrivateKey,
    vendor_id: bytes | None = None,
    class_id: bytes | None = None,
    integrated: bool = True,
    uri: str | None = None,
    text: Mapping[str, Mapping[Any, Any]] | None = None,
    reference_uri: str | None = None,
    tagged: bool = False,
    encrypt_for: Sequence[EncryptionRecipient] = (),
    content_algorithm: COSEAlgorithm = COSEAlgorithm.A128GCM,
) -> bytes:
    """Build a signed SUIT_Envelope that installs ``payload``.

    :param manifest_component_id: where the device records the manifest.
    :param component_id: where the payload is installed.
    :param sequence_number: must grow with every new version.
    :param signer: signs the COSE_Sign1 (ESP256 or Ed25519 by key kind).
    :param integrated: carry the payload in the envelope under ``uri``
        (default ``#tc``, as in the TEEP Protocol's examples).
    :param uri: the fetch URI; required when ``integrated`` is false.
    :param tagged: wrap the envelope in tag 107 (TEEP sends it untagged).
    :param encrypt_for: encrypt the payload for these device keys or
        shared KEKs (none: plaintext).
    :param content_algorithm: the content encryption when encrypting.
    :raises ValueError: if no URI is given for a detached payload.
    :raises SuitError: if ``sequence_number`` is not in 0..2^63-1.
    :raises SuitUnsupportedError: for an unsupported algorithm or key.
    """
    if uri is None:
        if not integrated:
            raise ValueError("a payload that is not integrated needs a uri")
        uri = "#tc"
    info, shipped = None, payload
    if encrypt_for:
        info, shipped = encrypt_payload(
            payload, encrypt_for, content_algorithm=content_algorithm
        )
    manifest = build_manifest(
        manifest_component_id=manifest_component_id,
        component_id=component_id,
        payload=payload,
        sequence_number=sequence_number,
        vendor_id=vendor_id,
        class_id=class_id,
        uri=uri,
        text=text,
        reference_uri=reference_uri,
        encryption_info=info,
    )
    extra = {uri: shipped} if integrated else {}
    return envelope_of(manifest, signer, extra, tagged)


def _auth_wrapper(wrapped_manifest: bytes, signers: list[PrivateKey]) -> bytes:
    digest = SuitDigest.of(wrapped_manifest).encode()
    blocks = [cose.sign1(digest, key, detached=True) for key in signers]
    return cbor.dumps([digest, *blocks])


def envelope_of(
    manifest: bytes,
    signer: PrivateKey,
    integrated: Mapping[Any, bytes] | None = None,
    tagged: bool = False,
) -> bytes:
    """Sign an encoded manifest and wrap it in an envelope.

    :param integrated: the other envelope members: integrated payloads and
        dependencies by their ``#name`` keys, severed members by their
        manifest key.
    :param tagged: wrap the envelope in tag 107.
    :raises SuitError: if a member's key is the authentication wrapper's or
        the manifest's (it would replace them).
    """
    extra = dict(integrated or {})
    own = {int(SuitEnvelopeKey.authentication_wrapper), int(SuitEnvelopeKey.manifest)}
    for key in extra:
        if not isinstance(key, str) and key in own:
            raise SuitError(
                f"envelope member {key!r} would replace the envelope's own: "
                "give integrated payloads #name keys"
            )
    members: dict[Any, Any] = {
        int(SuitEnvelopeKey.authentication_wrapper): _auth_wrapper(
            cbor.dumps(manifest), [signer]
        ),
        int(SuitEnvelopeKey.manifest): manifest,
        **extra,
    }
    encoded = cbor.det_dumps(members)
    if tagged:
        return cbor.dumps(cbor.CBORTag(ENVELOPE_TAG, cbor.loads(encoded)))
    return encoded


def sign_envelope(
    data: bytes, signer: PrivateKey, *, keep_existing: bool = False
) -> bytes:
    """Sign an envelope again, or wrap a bare manifest into a signed envelope.

    ``data`` is either a SUIT_Envelope (tagged or not), whose other members
    are kept, or an encoded SUIT_Manifest (tagged 1070 or not).  The digest
    is always recomputed from the manifest bytes before signing.

    :param keep_existing: keep the envelope's current authentication blocks
        and add the new one after them.
    :raises SuitDecodeError: if ``data`` is neither.
    :raises SuitError: if ``keep_existing`` is set and a kept block is
        already signed by ``signer``'s key id.
    """
    value = _loads(
        data, "envelope or manifest", frozenset({ENVELOPE_TAG, MANIFEST_TAG})
    )
    tagged = isinstance(value, cbor.CBORTag) and value.tag == ENVELOPE_TAG
    if isinstance(value, cbor.CBORTag):
        value = value.value
    if not isinstance(value, dict):
        raise SuitDecodeError("expected a SUIT_Envelope or SUIT_Manifest map")
    if SuitManifestKey.manifest_version in value:
        # A bare manifest: keep its bytes unless it came with tag 1070.
        bare = data if cbor.peek_tag(data) is None else cbor.det_dumps(value)
        return envelope_of(bare, signer)
    manifest = value[SuitEnvelopeKey.manifest]
    if not isinstance(manifest, bytes):
        raise SuitDecodeError("the manifest member must be a byte string")
    value[SuitEnvelopeKey.authentication_wrapper] = _resign(
        value.get(SuitEnvelopeKey.authentication_wrapper),
        manifest,
        signer,
        keep_existing,
    )
    encoded = cbor.det_dumps(value)
    if tagged:
        return cbor.dumps(cbor.CBORTag(ENVELOPE_TAG, cbor.loads(encoded)))
    return encoded


def _resign(old: Any, manifest: bytes, signer: PrivateKey, keep: bool) -> bytes:
    digest = SuitDigest.of(cbor.dumps(manifest)).encode()
    blocks: list[bytes] = []
    if keep and isinstance(old, bytes):
        previous = _loads(old, "SUIT_Authentication")
        # Blocks over another digest would be dead weight: keep only those
        # that sign this very manifest.
        if isinstance(previous, list) and previous and previous[0] == digest:
            blocks = [b for b in previous[1:] if isinstance(b, bytes)]
        for block in blocks:
            if signer.kid in _block_kids(block):
                raise SuitError(
                    f"the envelope is already signed by key id {signer.kid.hex()}"
                )
    blocks.append(cose.sign1(digest, signer, detached=True))
    return cbor.dumps([digest, *blocks])


def _block_kids(block: bytes) -> set[bytes]:
    """The key ids an authentication block names (none if it is unreadable)."""
    try:
        message = cose.parse(block)
    except (DecodeError, ValueError):
        return set()
    return {sig.kid for sig in message.signatures if sig.kid is not None}


_SEVER_MIN = 32 + 4
"""Members shorter than a SHA-256 SUIT_Digest plus 4 bytes stay inline
(manifest 8.5: severing them would not save anything)."""


def sever_envelope(
    data: bytes,
    signer: PrivateKey,
    members: Iterable[int] = SEVERABLE,
) -> tuple[bytes, tuple[int, ...]]:
    """Move severable manifest members into the envelope and sign again.

    Each inline member among ``members`` (text, install, payload-fetch,
    dependency-resolution, candidate-verification) is replaced in the
    manifest by the SUIT_Digest of its bstr-wrapped bytes and carried in
    the envelope under the same key, as draft-ietf-suit-manifest section
    8.5 describes.  The manifest digest changes, so the old authentication
    blocks are dropped and ``signer`` signs the new manifest.

    :returns: the new envelope and the keys that were severed.
    :raises SuitDecodeError: if ``data`` is not an envelope.
    """
    env = SuitEnvelope.decode(data)
    manifest = _loads(env.manifest.raw, "suit-manifest")
    moved: dict[int, bytes] = {}
    for key in sorted(set(members) & SEVERABLE):
        member = manifest.get(key)
        if isinstance(member, bytes) and len(member) >= _SEVER_MIN:
            moved[key] = member
            manifest[key] = SuitDigest.of(cbor.dumps(member)).to_cbor()
    encoded = cbor.det_dumps(manifest)
    extra: dict[Any, Any] = {
        k: _loads(v, "severed member") for k, v in env.severable.items()
    }
    extra.update(moved)
    extra.update(env.integrated)
    return envelope_of(encoded, signer, extra, env.tagged), tuple(moved)
