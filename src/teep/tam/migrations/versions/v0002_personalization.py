"""The catalogue also holds Personalization Data, for every device or one.

Every row gets a ``kind`` (``ta`` for a Trusted Component's own manifest,
``config`` for its Personalization Data) and a ``device`` (``*`` for every
device, else a device's kid or ueid in hex); rows already stored are
Trusted Components for every device.  A version is unique per name, kind
and device.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-18
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

OLD_UNIQUE = "uq_components_name_sequence_number"
NEW_UNIQUE = "uq_components_name_kind_device_sequence_number"


def upgrade() -> None:
    """Add the kind and device columns and widen the version's identity."""
    # Batch mode rebuilds the table on SQLite, which cannot drop a
    # constraint in place; PostgreSQL gets plain ALTER TABLE statements.
    with op.batch_alter_table("components") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(16), server_default="ta", nullable=False)
        )
        batch.add_column(
            sa.Column("device", sa.String(300), server_default="*", nullable=False)
        )
        batch.drop_constraint(OLD_UNIQUE, type_="unique")
        batch.create_unique_constraint(
            NEW_UNIQUE, ["name", "kind", "device", "sequence_number"]
        )


def downgrade() -> None:
    """Drop the Personalization Data (the old schema cannot hold it) and the
    new columns."""
    components = sa.table("components", sa.column("kind", sa.String))
    op.execute(components.delete().where(components.c.kind != "ta"))
    with op.batch_alter_table("components") as batch:
        batch.drop_constraint(NEW_UNIQUE, type_="unique")
        batch.drop_column("device")
        batch.drop_column("kind")
        batch.create_unique_constraint(OLD_UNIQUE, ["name", "sequence_number"])
