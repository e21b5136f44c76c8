"""The TAM's first schema.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

KID = sa.LargeBinary(64)


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.Integer(), nullable=False)


def upgrade() -> None:
    """Create every table of the first schema."""
    op.create_table(
        "devices",
        _id(),
        sa.Column("kid", KID, nullable=False),
        sa.Column("cose_key", sa.LargeBinary(), nullable=False),
        sa.Column("ueid", KID, nullable=True),
        sa.Column("hwmodel", KID, nullable=True),
        sa.Column("numbering", sa.String(16), nullable=False),
        sa.Column("label", sa.String(200), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=False),
        sa.Column("status_at", sa.Float(), nullable=True),
        sa.Column("first_seen", sa.Float(), nullable=False),
        sa.Column("last_seen", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_devices"),
        sa.UniqueConstraint("kid", name="uq_devices_kid"),
        sa.UniqueConstraint("label", name="uq_devices_label"),
    )
    op.create_index("ix_devices_ueid", "devices", ["ueid"])

    op.create_table(
        "device_manifests",
        _id(),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("manifest_component_id", sa.LargeBinary(), nullable=False),
        sa.Column("sequence_number", sa.BigInteger(), nullable=True),
        sa.Column("reported_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_device_manifests"),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name="fk_device_manifests_device_id_devices",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_device_manifests_device_id", "device_manifests", ["device_id"])

    op.create_table(
        "components",
        _id(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("manifest_component_id", sa.LargeBinary(512), nullable=False),
        sa.Column("component_id", sa.LargeBinary(), nullable=False),
        sa.Column("sequence_number", sa.BigInteger(), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("signer_kid", KID, nullable=False),
        sa.Column("added_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_components"),
        sa.UniqueConstraint(
            "name", "sequence_number", name="uq_components_name_sequence_number"
        ),
    )
    op.create_index("ix_components_name", "components", ["name"])
    op.create_index(
        "ix_components_manifest_component_id",
        "components",
        ["manifest_component_id"],
    )

    op.create_table(
        "policies",
        _id(),
        sa.Column("component", sa.String(200), nullable=False),
        sa.Column("selector", sa.String(300), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_policies"),
        sa.UniqueConstraint(
            "component", "selector", name="uq_policies_component_selector"
        ),
    )
    op.create_index("ix_policies_component", "policies", ["component"])

    op.create_table(
        "nonces",
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("device_kid", KID, nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("issued_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("used", sa.Boolean(), nullable=False),
        sa.Column("used_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("hash", name="pk_nonces"),
    )
    op.create_index("ix_nonces_expires_at", "nonces", ["expires_at"])
    op.create_index(
        "ix_nonces_outstanding", "nonces", ["device_kid", "used", "expires_at"]
    )

    _create_records()
    _create_trust()


def _create_records() -> None:
    """Tables of what happened: appraisals, events, SUIT Reports."""
    op.create_table(
        "appraisals",
        _id(),
        sa.Column("device_kid", KID, nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_appraisals"),
    )
    op.create_index("ix_appraisals_device_kid", "appraisals", ["device_kid"])

    op.create_table(
        "events",
        _id(),
        sa.Column("device_kid", KID, nullable=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_device_kid", "events", ["device_kid"])

    op.create_table(
        "suit_reports",
        _id(),
        sa.Column("device_kid", KID, nullable=False),
        sa.Column("report", sa.LargeBinary(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_suit_reports"),
    )
    op.create_index("ix_suit_reports_device_kid", "suit_reports", ["device_kid"])


def _create_trust() -> None:
    """Tables of trust configuration: keys and settings."""
    op.create_table(
        "attestation_keys",
        _id(),
        sa.Column("kid", KID, nullable=False),
        sa.Column("cose_key", sa.LargeBinary(), nullable=False),
        sa.Column("hwmodel", KID, nullable=True),
        sa.Column("oemid", KID, nullable=True),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("added_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_attestation_keys"),
        sa.UniqueConstraint("kid", name="uq_attestation_keys_kid"),
    )

    op.create_table(
        "signer_keys",
        _id(),
        sa.Column("kid", KID, nullable=False),
        sa.Column("cose_key", sa.LargeBinary(), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("added_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_signer_keys"),
        sa.UniqueConstraint("kid", name="uq_signer_keys_kid"),
    )

    op.create_table(
        "settings",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_settings"),
    )


TABLES = (
    "settings",
    "signer_keys",
    "attestation_keys",
    "suit_reports",
    "events",
    "appraisals",
    "nonces",
    "policies",
    "components",
    "device_manifests",
    "devices",
)


def downgrade() -> None:
    """Drop every table of the first schema (and its data)."""
    for table in TABLES:
        op.drop_table(table)
