"""Build and sign SUIT envelopes (the TAM's and the tools' side).

:func:`build_envelope` writes the manifest a TEEP TAM needs for one Trusted
Component, in the shape of the TEEP Protocol's Appendix E examples: the
shared sequence sets vendor/class ids, the image digest and size and checks
the ids; install fetches the payload (by URI, or from the envelope itself
under ``#name``) and checks image-match; validate checks image-match again;
uninstall unlinks the component.  Everything is encoded with RFC 8949
deterministic ordering, as draft-ietf-suit-manifest section 8.1 requires.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from teep import cbor, cose
from teep.keys import PrivateKey
from teep.suit.envelope import SuitDigest, _loads
from teep.suit.errors import SuitDecodeError
from teep.suit.registry import (
    ENVELOPE_TAG,
    MANIFEST_TAG,
    SuitCommand,
    SuitCommonKey,
    SuitEnvelopeKey,
    SuitManifestKey,
    SuitParameter,
    SuitReportingPolicy,
)
from teep.suit.store import ComponentId

__all__ = [
    "REPORT_ALL",
    "build_envelope",
    "build_manifest",
    "encode_sequence",
    "sign_envelope",
]

REPORT_ALL = int(SuitReportingPolicy(15))
"""The reporting policy the examples use on every condition."""
_RECORD_ON_FAILURE = int(SuitReportingPolicy.send_record_on_failure)


def encode_sequence(*commands: tuple[int, Any]) -> bytes:
    """Encode ``(label, argument)`` pairs as a SUIT_Command_Sequence."""
    flat = [x for label, arg in commands for x in (int(label), arg)]
    return cbor.det_dumps(flat)


def _shared(
    payload: bytes, vendor_id: bytes | None, class_id: bytes | None
) -> list[tuple[int, Any]]:
    params: dict[int, Any] = {
        SuitParameter.image_digest: SuitDigest.of(payload).encode(),
        SuitParameter.image_size: len(payload),
    }
    checks: list[tuple[int, Any]] = []
    if vendor_id is not None:
        params[SuitParameter.vendor_identifier] = vendor_id
        checks.append((SuitCommand.condition_vendor_identifier, REPORT_ALL))
    if class_id is not None:
        params[SuitParameter.class_identifier] = class_id
        checks.append((SuitCommand.condition_class_identifier, REPORT_ALL))
    return [(SuitCommand.directive_override_parameters, _ints(params)), *checks]


def _ints(params: Mapping[int, Any]) -> dict[int, Any]:
    return {int(k): v for k, v in params.items()}


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
) -> bytes:
    """Encode a SUIT_Manifest that installs ``payload`` into ``component_id``.

    :param uri: where fetch finds the payload (``#name`` = integrated).
    :param text: a SUIT_Text_Map (language tag -> text keys), kept inline.
    :returns: the encoded manifest map (not bstr-wrapped).
    """
    common: dict[int, Any] = {
        SuitCommonKey.components: [list(component_id)],
        SuitCommonKey.shared_sequence: encode_sequence(
            *_shared(payload, vendor_id, class_id)
        ),
    }
    install = encode_sequence(
        (SuitCommand.directive_override_parameters, {int(SuitParameter.uri): uri}),
        (SuitCommand.directive_fetch, _RECORD_ON_FAILURE),
        (SuitCommand.condition_image_match, REPORT_ALL),
    )
    manifest: dict[int, Any] = {
        SuitManifestKey.manifest_version: 1,
        SuitManifestKey.manifest_sequence_number: sequence_number,
        SuitManifestKey.common: cbor.det_dumps(_ints(common)),
        SuitManifestKey.manifest_component_id: list(manifest_component_id),
        SuitManifestKey.validate: encode_sequence(
            (SuitCommand.condition_image_match, REPORT_ALL)
        ),
        SuitManifestKey.install: install,
        SuitManifestKey.uninstall: encode_sequence(
            (SuitCommand.directive_unlink, REPORT_ALL)
        ),
    }
    if reference_uri is not None:
        manifest[SuitManifestKey.reference_uri] = reference_uri
    if text is not None:
        manifest[SuitManifestKey.text] = cbor.det_dumps(dict(text))
    return cbor.det_dumps(_ints(manifest))


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
    :raises ValueError: if no URI is given for a detached payload.
    """
    if uri is None:
        if not integrated:
            raise ValueError("a payload that is not integrated needs a uri")
        uri = "#tc"
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
    )
    extra = {uri: payload} if integrated else {}
    return _envelope(manifest, signer, extra, tagged)


def _auth_wrapper(wrapped_manifest: bytes, signers: list[PrivateKey]) -> bytes:
    digest = SuitDigest.of(wrapped_manifest).encode()
    blocks = [cose.sign1(digest, key, detached=True) for key in signers]
    return cbor.dumps([digest, *blocks])


def _envelope(
    manifest: bytes, signer: PrivateKey, extra: Mapping[Any, Any], tagged: bool
) -> bytes:
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
        return _envelope(bare, signer, {}, False)
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
    blocks.append(cose.sign1(digest, signer, detached=True))
    return cbor.dumps([digest, *blocks])
