"""SUIT code points, spelled after the drafts' CDDL names.

Sources: draft-ietf-suit-manifest-37 (core), draft-ietf-suit-trust-domains
(TD), draft-ietf-suit-firmware-encryption (FE) and draft-ietf-suit-report-18.
A member's name is the CDDL name without its ``suit-`` prefix, with ``-``
turned into ``_``; the registries that share a prefix in the CDDL (commands
are ``condition-*`` and ``directive-*``) keep it.
"""

from __future__ import annotations

import enum

__all__ = [
    "ENVELOPE_TAG",
    "MANIFEST_TAG",
    "SEVERABLE",
    "SuitCommand",
    "SuitCommonKey",
    "SuitDependencyKey",
    "SuitDigestAlgorithm",
    "SuitEnvelopeKey",
    "SuitManifestKey",
    "SuitParameter",
    "SuitRecordField",
    "SuitReportKey",
    "SuitReportReason",
    "SuitReportingPolicy",
    "SuitTextComponentKey",
    "SuitTextKey",
]

ENVELOPE_TAG = 107
"""CBOR tag of SUIT_Envelope_Tagged."""
MANIFEST_TAG = 1070
"""CBOR tag of SUIT_Manifest_Tagged."""


class SuitEnvelopeKey(enum.IntEnum):
    """Integer keys of SUIT_Envelope (text keys are integrated payloads)."""

    delegation = 1  # reserved: TD removed the delegation chain
    authentication_wrapper = 2
    manifest = 3
    dependency_resolution = 15
    payload_fetch = 16
    candidate_verification = 18
    install = 20
    text = 23


class SuitManifestKey(enum.IntEnum):
    """Keys of SUIT_Manifest."""

    manifest_version = 1
    manifest_sequence_number = 2
    common = 3
    reference_uri = 4
    manifest_component_id = 5
    validate = 7
    load = 8
    invoke = 9
    dependency_resolution = 15
    payload_fetch = 16
    candidate_verification = 18
    install = 20
    text = 23
    uninstall = 24


SEVERABLE = frozenset(
    {
        SuitManifestKey.dependency_resolution,
        SuitManifestKey.payload_fetch,
        SuitManifestKey.candidate_verification,
        SuitManifestKey.install,
        SuitManifestKey.text,
    }
)
"""Manifest members that may be replaced by their SUIT_Digest."""


class SuitCommonKey(enum.IntEnum):
    """Keys of SUIT_Common."""

    dependencies = 1
    components = 2
    shared_sequence = 4


class SuitDependencyKey(enum.IntEnum):
    """Keys of SUIT_Dependency_Metadata (TD)."""

    dependency_prefix = 1


class SuitCommand(enum.IntEnum):
    """Condition and directive labels of SUIT_Command_Sequence."""

    condition_vendor_identifier = 1
    condition_class_identifier = 2
    condition_image_match = 3
    condition_component_slot = 5
    condition_check_content = 6
    condition_dependency_integrity = 7
    condition_is_dependency = 8
    directive_process_dependency = 11
    directive_set_component_index = 12
    condition_abort = 14
    directive_try_each = 15
    directive_write = 18
    directive_set_parameters = 19
    directive_override_parameters = 20
    directive_fetch = 21
    directive_copy = 22
    directive_invoke = 23
    condition_device_identifier = 24
    directive_swap = 31
    directive_run_sequence = 32
    directive_unlink = 33

    @property
    def is_condition(self) -> bool:
        """True for conditions (no side effects, may soft-fail)."""
        return self.name.startswith("condition_")


class SuitParameter(enum.IntEnum):
    """Keys of SUIT_Parameters (override- and set-parameters arguments)."""

    vendor_identifier = 1
    class_identifier = 2
    image_digest = 3
    component_slot = 5
    strict_order = 12
    soft_failure = 13
    image_size = 14
    content = 18
    encryption_info = 19
    uri = 21
    source_component = 22
    invoke_args = 23
    device_identifier = 24
    fetch_arguments = 25


class SuitDigestAlgorithm(enum.IntEnum):
    """suit-cose-hash-algs (COSE algorithm ids)."""

    sha_256 = -16
    shake128 = -18
    sha_384 = -43
    sha_512 = -44
    shake256 = -45


class SuitTextKey(enum.IntEnum):
    """Manifest-level keys of SUIT_Text_LMap."""

    manifest_description = 1
    update_description = 2
    manifest_json_source = 3
    manifest_yaml_source = 4


class SuitTextComponentKey(enum.IntEnum):
    """Component-level keys of SUIT_Text_LMap."""

    vendor_name = 1
    model_name = 2
    vendor_domain = 3
    model_info = 4
    component_description = 5
    component_version = 6


class SuitReportingPolicy(enum.IntFlag):
    """Bits of SUIT_Rep_Policy (suit-reporting-bits)."""

    send_record_on_success = 1
    send_record_on_failure = 2
    send_sysinfo_success = 4
    send_sysinfo_failure = 8


class SuitReportKey(enum.IntEnum):
    """Keys of SUIT_Report and of its result map."""

    report_nonce = 2
    report_records = 3
    report_result = 4
    report_result_code = 5
    report_result_record = 6
    report_result_reason = 7
    report_capability_report = 8
    reference = 99


class SuitRecordField(enum.IntEnum):
    """Positions in SUIT_Record."""

    record_manifest_id = 0
    record_manifest_section = 1
    record_section_offset = 2
    record_component_index = 3
    record_properties = 4


class SuitReportReason(enum.IntEnum):
    """SUIT_Report_Reasons."""

    ok = 0
    cbor_parse = 1
    cose_unsupported = 2
    alg_unsupported = 3
    unauthorised = 4
    command_unsupported = 5
    component_unsupported = 6
    component_unauthorised = 7
    parameter_unsupported = 8
    severing_unsupported = 9
    condition_failed = 10
    operation_failed = 11
    invoke_pending = 12
