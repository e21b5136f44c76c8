"""SUIT_Report (draft-ietf-suit-report-18): build and decode.

A report names the manifest it is about (``suit-reference``: its
reference-uri, or ``""`` when it has none, and its digest), echoes the TEEP
token as ``suit-report-nonce``, lists records, and ends with either
``true`` or the record and reason of the failure.

``section-offset`` in a record counts bytes from the start of the command
sequence's encoding, its array header included (the draft leaves the
origin open).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from teep import cbor
from teep.errors import DecodeError
from teep.suit.envelope import SuitDigest
from teep.suit.errors import SuitDecodeError
from teep.suit.registry import (
    SuitDigestAlgorithm,
    SuitManifestKey,
    SuitParameter,
    SuitReportKey,
    SuitReportReason,
)
from teep.suit.store import ComponentId

__all__ = [
    "SuitRecord",
    "SuitReport",
    "SuitReportFailure",
    "build_report",
    "decode_report",
    "system_property_claims",
]


@dataclass(frozen=True)
class SuitRecord:
    """A SUIT_Record: where in which manifest something happened."""

    manifest_id: tuple[int, ...]
    """Path down the dependency tree (``()`` = the root manifest)."""
    manifest_section: int
    """Manifest key of the top-level sequence (SuitManifestKey)."""
    section_offset: int
    """Byte offset of the command within that sequence."""
    component_index: int
    """The component the command applied to."""
    properties: Mapping[int, Any] = field(default_factory=dict)
    """Measured values, keyed by SuitParameter."""

    def to_json(self) -> dict[str, Any]:
        """The record with names, ready for JSON (bytes as hex)."""
        return {
            "manifest-id": list(self.manifest_id),
            "section": _name(SuitManifestKey, self.manifest_section),
            "offset": self.section_offset,
            "component-index": self.component_index,
            "properties": {
                _name(SuitParameter, k): _parameter(k, v)
                for k, v in self.properties.items()
            },
        }

    def to_cbor(self) -> list[Any]:
        """The record as a CBOR-ready array."""
        return [
            list(self.manifest_id),
            self.manifest_section,
            self.section_offset,
            self.component_index,
            dict(self.properties),
        ]

    @classmethod
    def from_cbor(cls, value: Any) -> SuitRecord:
        """Check a decoded SUIT_Record.

        :raises SuitDecodeError: if malformed.
        """
        if not (
            isinstance(value, list)
            and len(value) >= 5
            and isinstance(value[0], list)
            and all(_uint(x) for x in value[0])
            and _int(value[1])
            and _uint(value[2])
            and _uint(value[3])
            and isinstance(value[4], dict)
        ):
            raise SuitDecodeError("malformed SUIT_Record")
        return cls(tuple(value[0]), value[1], value[2], value[3], value[4])


@dataclass(frozen=True)
class SuitReportFailure:
    """The failure branch of suit-report-result."""

    code: int
    """suit-report-result-code (implementation specific)."""
    record: SuitRecord
    """Where it failed."""
    reason: int
    """suit-report-result-reason (SuitReportReason when known)."""


@dataclass(frozen=True)
class SuitReport:
    """A decoded SUIT_Report."""

    manifest_uri: str
    """suit-report-manifest-uri."""
    manifest_digest: SuitDigest
    """suit-report-manifest-digest."""
    nonce: bytes | None
    """suit-report-nonce (the TEEP token), if any."""
    records: tuple[SuitRecord | Mapping[int, Any], ...]
    """Records and system-property-claims (maps), in order."""
    result: SuitReportFailure | None
    """None when the result is ``true``."""
    capability_report: Mapping[Any, Any] | None = None
    """suit-report-capability-report, as decoded."""

    @property
    def succeeded(self) -> bool:
        """Whether suit-report-result is ``true``."""
        return self.result is None

    def to_json(self) -> dict[str, Any]:
        """The report with names, ready for JSON (bytes as hex)."""
        result: Any = "success"
        if self.result is not None:
            result = {
                "reason": _name(SuitReportReason, self.result.reason),
                "code": self.result.code,
                "record": self.result.record.to_json(),
            }
        return {
            "manifest-uri": self.manifest_uri,
            "manifest-digest": _digest_text(self.manifest_digest.to_cbor()),
            "nonce": None if self.nonce is None else self.nonce.hex(),
            "result": result,
            "records": [
                r.to_json() if isinstance(r, SuitRecord) else _claims(r)
                for r in self.records
            ],
        }

    def encode(self) -> bytes:
        """Encode deterministically."""
        # Members go in the CDDL's order (reference first), as in the
        # synthesized vectors; the draft does not ask for deterministic maps.
        report: dict[int, Any] = {
            SuitReportKey.reference: [self.manifest_uri, self.manifest_digest.to_cbor()]
        }
        if self.nonce is not None:
            report[SuitReportKey.report_nonce] = self.nonce
        report[SuitReportKey.report_records] = [_record(r) for r in self.records]
        report[SuitReportKey.report_result] = (
            True if self.result is None else _result(self.result)
        )
        if self.capability_report is not None:
            report[SuitReportKey.report_capability_report] = self.capability_report
        return cbor.dumps({int(k): v for k, v in report.items()})


def _name(registry: Any, value: Any) -> str:
    try:
        return str(registry(value).name).replace("_", "-")
    except ValueError:
        return str(value)


def _plain(value: Any) -> Any:
    """A decoded CBOR value with byte strings as hex, for JSON."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(_plain(k)): _plain(v) for k, v in value.items()}
    return value


def _digest_text(value: Any) -> Any:
    """A SUIT_Digest as ``ALGORITHM:HEX`` (``sha-256:...``); anything else
    as plain JSON."""
    if (
        isinstance(value, list)
        and len(value) >= 2
        and isinstance(value[0], int)
        and not isinstance(value[0], bool)
        and isinstance(value[1], bytes)
    ):
        return f"{_name(SuitDigestAlgorithm, value[0])}:{value[1].hex()}"
    return _plain(value)


def _parameter(key: Any, value: Any) -> Any:
    """A measured parameter for JSON: an image digest (a bstr-wrapped
    SUIT_Digest) as ``ALGORITHM:HEX``, anything else as plain JSON."""
    if key == SuitParameter.image_digest and isinstance(value, bytes):
        try:
            return _digest_text(cbor.loads(value))
        except DecodeError:
            pass
    return _plain(value)


def _claims(claims: Mapping[int, Any]) -> dict[str, Any]:
    return {
        ("component-id" if k == 0 else _name(SuitParameter, k)): _parameter(k, v)
        for k, v in claims.items()
    }


def _record(record: SuitRecord | Mapping[int, Any]) -> Any:
    return record.to_cbor() if isinstance(record, SuitRecord) else dict(record)


def _result(failure: SuitReportFailure) -> dict[int, Any]:
    return {
        int(SuitReportKey.report_result_code): failure.code,
        int(SuitReportKey.report_result_record): failure.record.to_cbor(),
        int(SuitReportKey.report_result_reason): int(failure.reason),
    }


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _uint(value: Any) -> bool:
    return _int(value) and value >= 0


def system_property_claims(component: ComponentId, **params: Any) -> dict[int, Any]:
    """A system-property-claims map: ``{0: component id, parameter: value}``."""
    claims: dict[int, Any] = {0: list(component)}
    claims.update({int(SuitParameter[name]): v for name, v in params.items()})
    return claims


def build_report(
    *,
    manifest_digest: SuitDigest,
    manifest_uri: str | None = None,
    nonce: bytes | None = None,
    records: Sequence[SuitRecord | Mapping[int, Any]] = (),
    failure: SuitReportFailure | None = None,
) -> bytes:
    """Encode a SUIT_Report.

    :param manifest_uri: the manifest's reference-uri (``""`` if None).
    :param nonce: the TEEP token to echo, when the request had one.
    :param failure: None for a successful report.
    """
    return SuitReport(
        manifest_uri or "", manifest_digest, nonce, tuple(records), failure
    ).encode()


def decode_report(data: bytes) -> SuitReport:
    """Decode an unprotected SUIT_Report.

    :raises SuitDecodeError: if malformed.
    """
    try:
        value = cbor.loads(data, tags=())
    except DecodeError as exc:
        raise SuitDecodeError(f"SUIT_Report: {exc}") from None
    if not isinstance(value, dict):
        raise SuitDecodeError("SUIT_Report must be a map")
    ref = value.get(SuitReportKey.reference)
    if not isinstance(ref, list) or len(ref) != 2 or not isinstance(ref[0], str):
        raise SuitDecodeError("suit-reference must be [tstr, SUIT_Digest]")
    nonce = value.get(SuitReportKey.report_nonce)
    if nonce is not None and not isinstance(nonce, bytes):
        raise SuitDecodeError("suit-report-nonce must be a byte string")
    records = value.get(SuitReportKey.report_records)
    if not isinstance(records, list):
        raise SuitDecodeError("suit-report-records must be an array")
    caps = value.get(SuitReportKey.report_capability_report)
    if caps is not None and not isinstance(caps, dict):
        raise SuitDecodeError("capability-report must be a map")
    return SuitReport(
        ref[0],
        SuitDigest.from_cbor(ref[1]),
        nonce,
        tuple(r if isinstance(r, dict) else SuitRecord.from_cbor(r) for r in records),
        _decode_result(value.get(SuitReportKey.report_result)),
        caps,
    )


def _decode_result(value: Any) -> SuitReportFailure | None:
    if value is True:
        return None
    if not isinstance(value, dict):
        raise SuitDecodeError("suit-report-result must be true or a map")
    code = value.get(SuitReportKey.report_result_code)
    reason = value.get(SuitReportKey.report_result_reason)
    if not isinstance(code, int) or not isinstance(reason, int):
        raise SuitDecodeError("result code and reason must be integers")
    record = SuitRecord.from_cbor(value.get(SuitReportKey.report_result_record))
    if reason in SuitReportReason.__members__.values():
        reason = SuitReportReason(reason)
    return SuitReportFailure(code, record, reason)
