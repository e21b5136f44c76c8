"""Failed deliveries: per device, each catalogue version it keeps refusing.

A row counts the consecutive Errors a device answered an Update carrying
one envelope with (by component name, kind and the envelope's SHA-256),
the last Error, and when the TAM started holding that version back.  Rows
go with their device.

Revision ID: 0003
Revises: 0002
Create Date: 2027-01-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLE = "delivery_failures"


def upgrade() -> None:
    """Create the table of failed deliveries."""
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("envelope_digest", sa.LargeBinary(32), nullable=False),
        sa.Column("sequence_number", sa.BigInteger(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("err_code", sa.Integer(), nullable=False),
        sa.Column("err_msg", sa.Text(), nullable=False),
        sa.Column("last_at", sa.Float(), nullable=False),
        sa.Column("held_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_delivery_failures"),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name="fk_delivery_failures_device_id_devices",
            ondelete="CASCADE",
        ),
        # Also the index the per-device queries use.
        sa.UniqueConstraint(
            "device_id",
            "name",
            "kind",
            "envelope_digest",
            name="uq_delivery_failures_device_id_name_kind_envelope_digest",
        ),
    )


def downgrade() -> None:
    """Drop the table (the counts are lost; devices get every version again)."""
    op.drop_table(TABLE)
