"""EAT claims (RFC 9711, RFC 8392) and the TEEP EAT profile.

:class:`EATClaims` is the claims set a TEEP Agent's Evidence carries.  Its
:meth:`EATClaims.from_map` is the strict decoder: it checks every claim it
knows against RFC 9711's types and sizes, the TEEP profile's required claims
and the RFC 9711 dependencies between claims, and raises a
:class:`~teep.attestation.errors.ClaimsError` subclass naming the claim.
Claims it does not know are kept, unchecked, in ``extra`` (RFC 9711: unknown
claims are ignored).

Claim keys are those of RFC 9711 as published.  Drafts before March 2024 used
other numbers for the later claims (manifests was 273, which is now
measurements); those numbers are not accepted under their old meaning.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from teep.attestation.errors import InvalidClaimError, MissingClaimError
from teep.errors import KeyLoadError
from teep.keys import PublicKey

__all__ = [
    "EAT_CWT_MEDIA_TYPE",
    "EAT_PROFILE_TEEP",
    "SUIT_REFERENCE_CONTENT_FORMAT",
    "TEEP_ATTESTATION_PAYLOAD_FORMAT",
    "DebugStatus",
    "EATClaim",
    "EATClaims",
    "HWVersion",
    "ManifestEntry",
    "SUITReference",
    "VersionScheme",
    "check_claims_set",
    "is_teep_profile_format",
    "parse_media_type",
]

#: The TEEP EAT profile's profile-label.  teep-protocol leaves the RFC
#: number open ("rfcXXXX"); until it is assigned both ends must agree on this
#: placeholder, so every consumer takes the profile as a parameter.
EAT_PROFILE_TEEP = "urn:ietf:rfc:rfcXXXX"

#: RFC 9782 media type of an EAT carried as a CWT.
EAT_CWT_MEDIA_TYPE = "application/eat+cwt"

#: The attestation-payload-format an absent parameter stands for.
TEEP_ATTESTATION_PAYLOAD_FORMAT = (
    f"{EAT_CWT_MEDIA_TYPE}; eat_profile={EAT_PROFILE_TEEP}"
)

#: CoAP content-format of a SUIT_Reference in ``manifests``.  None is
#: assigned yet; teep-protocol's example uses 60 (application/cbor).
SUIT_REFERENCE_CONTENT_FORMAT = 60


class EATClaim(enum.IntEnum):
    """CWT and EAT claim keys (RFC 8392, RFC 8747, RFC 9711)."""

    iss = 1
    sub = 2
    aud = 3
    exp = 4
    nbf = 5
    iat = 6
    cti = 7
    cnf = 8
    eat_nonce = 10
    nonce = 10
    ueid = 256
    sueids = 257
    oemid = 258
    hwmodel = 259
    hwversion = 260
    uptime = 261
    oemboot = 262
    dbgstat = 263
    location = 264
    eat_profile = 265
    submods = 266
    bootcount = 267
    bootseed = 268
    dloas = 269
    swname = 270
    swversion = 271
    manifests = 272
    measurements = 273
    measres = 274
    intuse = 275


class DebugStatus(enum.IntEnum):
    """Values of the ``dbgstat`` claim (RFC 9711 section 4.2.9)."""

    enabled = 0
    disabled = 1
    disabled_since_boot = 2
    disabled_permanently = 3
    disabled_fully_and_permanently = 4


class VersionScheme(enum.IntEnum):
    """Registered CoSWID version schemes (RFC 9393 section 4.1)."""

    multipartnumeric = 1
    multipartnumeric_suffix = 2
    alphanumeric = 3
    decimal = 4
    semver = 16384


# RFC 9393 leaves -256..-1 to private use; anything else must be registered.
_SCHEMES = frozenset(int(s) for s in VersionScheme) | frozenset(range(-256, 0))


class _CnfLabel(enum.IntEnum):
    """Confirmation method keys (RFC 8747 section 3.1)."""

    COSE_Key = 1
    Encrypted_COSE_Key = 2
    kid = 3


class _SUITReferenceLabel(enum.IntEnum):
    """SUIT_Reference keys (draft-ietf-suit-report)."""

    suit_report_manifest_digest = 0
    suit_report_manifest_uri = 1


@dataclass(frozen=True)
class HWVersion:
    """The ``hwversion`` claim: a version string and its CoSWID scheme."""

    version: str
    """The version text, for example ``"1.3.4"``."""
    scheme: int | None = None
    """The CoSWID version scheme, if given."""

    def to_cbor(self) -> list[Any]:
        """The claim value ``[version, ? scheme]``."""
        return [self.version] if self.scheme is None else [self.version, self.scheme]


@dataclass(frozen=True)
class SUITReference:
    """A SUIT manifest named by URI and digest (draft-ietf-suit-report)."""

    uri: str
    """Where the manifest can be fetched."""
    digest_alg: int
    """COSE hash algorithm of the digest (-16 = SHA-256)."""
    digest: bytes
    """Digest of the manifest."""

    def to_cbor(self) -> dict[int, Any]:
        """The SUIT_Reference map."""
        return {
            _SUITReferenceLabel.suit_report_manifest_digest: [
                self.digest_alg,
                self.digest,
            ],
            _SUITReferenceLabel.suit_report_manifest_uri: self.uri,
        }


@dataclass(frozen=True)
class ManifestEntry:
    """One element of ``manifests`` or ``measurements``."""

    content_format: int
    """CoAP content-format of the body."""
    body: bytes | SUITReference
    """The manifest bytes, or (TEEP profile) a SUIT_Reference."""

    @property
    def digest(self) -> bytes:
        """The digest reference values are compared with: the SUIT_Reference
        digest, or the SHA-256 of a byte-string body."""
        if isinstance(self.body, SUITReference):
            return self.body.digest
        return hashlib.sha256(self.body).digest()

    def to_cbor(self) -> list[Any]:
        """The claim element ``[content-format, body]``."""
        body = (
            self.body.to_cbor() if isinstance(self.body, SUITReference) else self.body
        )
        return [self.content_format, body]


# ---------------------------------------------------------------------------
# value decoders: each checks one claim value and returns its model form, or
# raises InvalidClaimError with a reason that does not repeat the claim name


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bstr(low: int, high: int) -> Callable[[Any], bytes]:
    def decode(value: Any) -> bytes:
        if not isinstance(value, bytes):
            raise InvalidClaimError("must be a byte string")
        if not low <= len(value) <= high:
            raise InvalidClaimError(f"must be {low}..{high} bytes, not {len(value)}")
        return value

    return decode


def _tstr(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidClaimError("must be a text string")
    return value


def _int(value: Any) -> int:
    # RFC 9711 section 4.3.1: a floating-point time is an error, not a time.
    if not _is_int(value):
        raise InvalidClaimError("must be an integer")
    return int(value)


def _uint(value: Any) -> int:
    if not _is_int(value) or value < 0:
        raise InvalidClaimError("must be an unsigned integer")
    return int(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidClaimError("must be true or false")
    return value


def _nonce(value: Any) -> bytes:
    # teep-protocol EAT profile: with the nonce mechanism eat_nonce is one bstr.
    if isinstance(value, list):
        raise InvalidClaimError("the TEEP profile allows a single byte string only")
    return _bstr(8, 64)(value)


def _oemid(value: Any) -> bytes | int:
    # RFC 9711 section 4.2.3: IEEE OUI (3 bytes), random (16 bytes) or a PEN.
    if _is_int(value):
        if value < 0:
            raise InvalidClaimError("a Private Enterprise Number is unsigned")
        return int(value)
    if isinstance(value, bytes) and len(value) in (3, 16):
        return value
    raise InvalidClaimError("must be 3 or 16 bytes, or an unsigned integer")


def _version(value: Any) -> HWVersion:
    if not isinstance(value, list) or not 1 <= len(value) <= 2:
        raise InvalidClaimError("must be [version: tstr, ? scheme: int]")
    version = value[0]
    if not isinstance(version, str) or not version:
        raise InvalidClaimError("the version must be a non-empty text string")
    if len(value) == 1:
        return HWVersion(version)
    scheme = value[1]
    if not _is_int(scheme):
        raise InvalidClaimError("the version scheme must be an integer")
    if scheme not in _SCHEMES:
        raise InvalidClaimError(f"version scheme {scheme} is not registered")
    return HWVersion(version, int(scheme))


def _cnf(value: Any) -> bytes:
    if not isinstance(value, dict) or len(value) != 1:
        raise InvalidClaimError("must be a map with one confirmation method")
    (method, content), *_ = value.items()
    if not _is_int(method):
        raise InvalidClaimError("the confirmation method must be an integer")
    if method == _CnfLabel.kid:
        return _bstr(1, 64)(content)
    if method == _CnfLabel.COSE_Key:
        # A full key is reduced to its RFC 9679 thumbprint, the form teep
        # compares with the key that signed the TEEP message.
        try:
            return PublicKey.from_cose_key(content).thumbprint
        except KeyLoadError as exc:
            raise InvalidClaimError(f"unusable COSE_Key: {exc}") from None
    raise InvalidClaimError(f"confirmation method {method!r} is not supported")


def _suit_reference(value: dict[Any, Any]) -> SUITReference:
    keys = {int(k) for k in _SUITReferenceLabel}
    if not all(_is_int(k) for k in value) or set(value) != keys:
        raise InvalidClaimError("a SUIT_Reference holds exactly a digest and a URI")
    digest = value[_SUITReferenceLabel.suit_report_manifest_digest]
    uri = value[_SUITReferenceLabel.suit_report_manifest_uri]
    if not isinstance(uri, str) or not uri:
        raise InvalidClaimError("the SUIT_Reference URI must be a text string")
    if (
        not isinstance(digest, list)
        or len(digest) != 2
        or not _is_int(digest[0])
        or not isinstance(digest[1], bytes)
        or not digest[1]
    ):
        raise InvalidClaimError("the SUIT_Reference digest must be [alg, bstr]")
    return SUITReference(uri, int(digest[0]), digest[1])


def _manifest_list(value: Any) -> tuple[ManifestEntry, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidClaimError("must be a non-empty array")
    entries = []
    for item in value:
        if not isinstance(item, list) or len(item) != 2 or not _is_int(item[0]):
            raise InvalidClaimError("each entry must be [content-format, body]")
        if item[0] < 0 or item[0] > 0xFFFF:
            raise InvalidClaimError("a content-format is a 16-bit unsigned integer")
        body = item[1]
        if isinstance(body, dict):
            body = _suit_reference(body)
        elif not isinstance(body, bytes):
            raise InvalidClaimError("a body must be a byte string or SUIT_Reference")
        entries.append(ManifestEntry(int(item[0]), body))
    return tuple(entries)


def _profile(value: Any) -> str | bytes:
    # RFC 9711 section 4.3.2: a URI (text) or an untagged OID (bytes).
    if isinstance(value, str | bytes) and value:
        return value
    raise InvalidClaimError("must be a URI text string or an OID byte string")


def _dbgstat(value: Any) -> DebugStatus:
    if not _is_int(value) or not 0 <= value <= max(DebugStatus):
        raise InvalidClaimError("must be an integer 0..4")
    return DebugStatus(value)


def _aud(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    raise InvalidClaimError("must be a text string or an array of them")


def _sueids(value: Any) -> Any:
    if not isinstance(value, dict) or not value:
        raise InvalidClaimError("must be a non-empty map of text to UEID")
    for label, ueid in value.items():
        if not isinstance(label, str):
            raise InvalidClaimError("labels must be text strings")
        _bstr(7, 33)(ueid)
    return value


def _location(value: Any) -> Any:
    if not isinstance(value, dict) or 1 not in value or 2 not in value:
        raise InvalidClaimError("must be a map with latitude (1) and longitude (2)")
    for key, item in value.items():
        if not _is_int(key) or not 1 <= key <= 9:
            raise InvalidClaimError(f"unknown location field {key!r}")
        if not _is_int(item) and not isinstance(item, float):
            raise InvalidClaimError("location fields are numbers")
    return value


def _nonempty_array(value: Any) -> Any:
    if not isinstance(value, list) or not value:
        raise InvalidClaimError("must be a non-empty array")
    return value


def _submods(value: Any) -> Any:
    if not isinstance(value, dict) or not value:
        raise InvalidClaimError("must be a non-empty map")
    for name, submod in value.items():
        if not isinstance(name, str):
            raise InvalidClaimError("submodule names must be text strings")
        _check_submod(name, submod)
    return value


def _check_submod(name: str, submod: Any) -> None:
    # RFC 9711 section 4.2.18: a claims set, a nested token (bstr for CBOR,
    # tstr for JSON) or a detached digest [alg, digest].
    if isinstance(submod, dict):
        try:
            check_claims_set(submod)
        except InvalidClaimError as exc:
            raise InvalidClaimError(f"in submodule {name!r}: {exc}") from None
    elif isinstance(submod, list):
        if (
            len(submod) != 2
            or not (_is_int(submod[0]) or isinstance(submod[0], str))
            or not isinstance(submod[1], bytes)
        ):
            raise InvalidClaimError(
                f"submodule {name!r}: a detached digest is [alg, bstr]"
            )
    elif not isinstance(submod, bytes | str):
        raise InvalidClaimError(f"submodule {name!r} has an invalid type")


_DECODERS: dict[EATClaim, Callable[[Any], Any]] = {
    EATClaim.iss: _tstr,
    EATClaim.sub: _tstr,
    EATClaim.aud: _aud,
    EATClaim.exp: _int,
    EATClaim.nbf: _int,
    EATClaim.iat: _int,
    EATClaim.cti: _bstr(1, 64),
    EATClaim.cnf: _cnf,
    EATClaim.eat_nonce: _nonce,
    EATClaim.ueid: _bstr(7, 33),
    EATClaim.sueids: _sueids,
    EATClaim.oemid: _oemid,
    EATClaim.hwmodel: _bstr(1, 32),
    EATClaim.hwversion: _version,
    EATClaim.uptime: _uint,
    EATClaim.oemboot: _bool,
    EATClaim.dbgstat: _dbgstat,
    EATClaim.location: _location,
    EATClaim.eat_profile: _profile,
    EATClaim.submods: _submods,
    EATClaim.bootcount: _uint,
    EATClaim.bootseed: _bstr(1, 1 << 16),
    EATClaim.dloas: _nonempty_array,
    EATClaim.swname: _tstr,
    EATClaim.swversion: _version,
    EATClaim.manifests: _manifest_list,
    EATClaim.measurements: _manifest_list,
    EATClaim.measres: _nonempty_array,
    EATClaim.intuse: _int,
}

# RFC 9711: a claim that qualifies another may only appear with it.
_NEEDS: tuple[tuple[EATClaim, EATClaim], ...] = (
    (EATClaim.hwmodel, EATClaim.oemid),
    (EATClaim.hwversion, EATClaim.hwmodel),
    (EATClaim.swversion, EATClaim.swname),
    (EATClaim.oemboot, EATClaim.oemid),
)


def check_claims_set(claims: Mapping[Any, Any]) -> dict[Any, Any]:
    """Check every known claim of a claims set and the dependencies between
    them; return the decoded values of the known claims.

    Used for a whole token and for each inline submodule.

    :raises InvalidClaimError: naming the first claim that is wrong.
    """
    decoded: dict[Any, Any] = {}
    for label, value in claims.items():
        claim = _known(label)
        if claim is None:
            continue
        try:
            decoded[claim] = _DECODERS[claim](value)
        except InvalidClaimError as exc:
            raise InvalidClaimError(f"{claim.name} ({int(claim)}): {exc}") from None
    for claim, needed in _NEEDS:
        if claim in decoded and needed not in decoded:
            raise InvalidClaimError(f"{claim.name} is present without {needed.name}")
    level = decoded.get(EATClaim.dbgstat)
    if level == DebugStatus.disabled_permanently and EATClaim.oemid not in decoded:
        raise InvalidClaimError("dbgstat disabled-permanently requires oemid")
    return decoded


def _known(label: Any) -> EATClaim | None:
    if not _is_int(label):
        return None
    try:
        return EATClaim(label)
    except ValueError:
        return None


# ---------------------------------------------------------------------------
# the TEEP profile claims set


@dataclass(frozen=True)
class EATClaims:
    """A claims set in the TEEP EAT profile (teep-protocol, "EAT Profile")."""

    ueid: bytes
    """Universal Entity ID of the device (7..33 bytes, type byte first)."""
    oemid: bytes | int
    """Hardware manufacturer: IEEE OUI, random 16 bytes, or an IANA PEN."""
    hwmodel: bytes
    """The device class (1..32 opaque bytes)."""
    hwversion: HWVersion
    """TEE hardware version."""
    manifests: tuple[ManifestEntry, ...]
    """TEE firmware and TEEP Agent manifests (SUIT references)."""
    cnf_kid: bytes
    """``cnf`` kid: the RFC 9679 thumbprint of the TEEP Agent's key."""
    nonce: bytes | None = None
    """``eat_nonce``: the QueryRequest challenge (nonce mechanism)."""
    eat_profile: str | bytes | None = None
    """The profile the token claims to follow."""
    iat: int | None = None
    """Issued-at time (seconds since the epoch)."""
    exp: int | None = None
    """Expiry time (seconds since the epoch)."""
    swname: str | None = None
    """Software name (for a TC: the URI of its SUIT manifest)."""
    measurements: tuple[ManifestEntry, ...] = ()
    """Measurements taken on the device."""
    dbgstat: DebugStatus | None = None
    """Debug status of the TEE."""
    oemboot: bool | None = None
    """Whether the device booted only OEM-authorised software."""
    extra: Mapping[Any, Any] = field(default_factory=lambda: MappingProxyType({}))
    """Every other claim, as decoded (known ones already type-checked)."""

    def to_map(self) -> dict[int, Any]:
        """The claims set as a CBOR-ready map with integer keys."""
        claims: dict[Any, Any] = dict(self.extra)
        for attr, claim, _required in _FIELDS:
            value = getattr(self, attr)
            if value is None or value == ():
                continue
            claims[claim] = _ENCODERS.get(claim, _same)(value)
        return {int(k) if _is_int(k) else k: v for k, v in claims.items()}

    @classmethod
    def from_map(cls, claims: Any) -> EATClaims:
        """Decode a claims set strictly.

        :raises MissingClaimError: if a TEEP-profile required claim is absent.
        :raises InvalidClaimError: if a known claim is malformed, or lacks a
            claim it depends on.
        """
        if not isinstance(claims, dict):
            raise InvalidClaimError("a claims set must be a map")
        # teep-protocol EAT profile: the claims a TAM needs for its policy.
        present = {k for k in claims if _known(k) is not None}
        missing = [c.name for _a, c, req in _FIELDS if req and c not in present]
        if missing:
            raise MissingClaimError(f"required claim(s) missing: {', '.join(missing)}")
        decoded = check_claims_set(claims)
        values: dict[str, Any] = {a: decoded.get(c) for a, c, _r in _FIELDS}
        values["measurements"] = values["measurements"] or ()
        modelled = {int(c) for _a, c, _r in _FIELDS}
        extra = {k: v for k, v in claims.items() if k not in modelled}
        return cls(**values, extra=MappingProxyType(extra))


def _same(value: Any) -> Any:
    return value


_FIELDS: tuple[tuple[str, EATClaim, bool], ...] = (
    ("ueid", EATClaim.ueid, True),
    ("oemid", EATClaim.oemid, True),
    ("hwmodel", EATClaim.hwmodel, True),
    ("hwversion", EATClaim.hwversion, True),
    ("manifests", EATClaim.manifests, True),
    ("cnf_kid", EATClaim.cnf, True),
    ("nonce", EATClaim.eat_nonce, False),
    ("eat_profile", EATClaim.eat_profile, False),
    ("iat", EATClaim.iat, False),
    ("exp", EATClaim.exp, False),
    ("swname", EATClaim.swname, False),
    ("measurements", EATClaim.measurements, False),
    ("dbgstat", EATClaim.dbgstat, False),
    ("oemboot", EATClaim.oemboot, False),
)

_ENCODERS: dict[EATClaim, Callable[[Any], Any]] = {
    EATClaim.hwversion: lambda v: v.to_cbor(),
    EATClaim.manifests: lambda v: [m.to_cbor() for m in v],
    EATClaim.measurements: lambda v: [m.to_cbor() for m in v],
    EATClaim.cnf: lambda v: {int(_CnfLabel.kid): v},
    EATClaim.dbgstat: int,
}


# ---------------------------------------------------------------------------
# attestation-payload-format


def parse_media_type(text: str) -> tuple[str, dict[str, str]]:
    """Split a media type into its lower-cased type and its parameters
    (names lower-cased, values unquoted).

    :raises ValueError: if a parameter has no ``=``.
    """
    head, *params = text.split(";")
    parsed: dict[str, str] = {}
    for param in params:
        if not param.strip():
            continue
        name, sep, value = param.partition("=")
        if not sep:
            raise ValueError(f"media type parameter {param.strip()!r} has no value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        parsed[name.strip().lower()] = value
    return head.strip().lower(), parsed


def is_teep_profile_format(fmt: str | None, profile: str = EAT_PROFILE_TEEP) -> bool:
    """Whether an attestation-payload-format names the TEEP EAT profile.

    teep-protocol 4.1: an absent format means the TEEP-profile EAT.  The
    profile parameter may be quoted or not.
    """
    if fmt is None:
        return True
    try:
        media_type, params = parse_media_type(fmt)
    except ValueError:
        return False
    return media_type == EAT_CWT_MEDIA_TYPE and params.get("eat_profile") == profile
