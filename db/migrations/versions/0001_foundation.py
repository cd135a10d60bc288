"""foundation: registry, catalogue, audit, api keys, report artifacts

Revision ID: 0001
Revises:
Create Date: 2026-11-26 15:54:19.733521
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False, comment='First characters, to recognise it.'),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('scope', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("scope IN ('read', 'write', 'admin')", name=op.f('ck_api_keys_scope')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash')),
    sa.UniqueConstraint('name', name=op.f('uq_api_keys_name'))
    )
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('actor', sa.String(length=120), nullable=False),
    sa.Column('entity_type', sa.String(length=40), nullable=False),
    sa.Column('entity_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('changes', sa.JSON(), nullable=False, comment='{field: [before, after]}'),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('is_deviation', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_entity', ['entity_type', 'entity_id'], unique=False)

    op.create_table('metrics',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('unit', sa.String(length=32), nullable=False),
    sa.Column('higher_is_better', sa.Boolean(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.CheckConstraint("kind IN ('binomial', 'mean')", name=op.f('ck_metrics_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_metrics')),
    sa.UniqueConstraint('name', name=op.f('uq_metrics_name'))
    )
    op.create_table('experiments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('owner', sa.String(length=120), nullable=False),
    sa.Column('hypothesis', sa.Text(), nullable=False),
    sa.Column('target_segment', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('primary_metric_id', sa.Integer(), nullable=True),
    sa.Column('planned_sample_size', sa.Integer(), nullable=True, comment='Planned units per variant.'),
    sa.Column('mde', sa.Double(), nullable=True, comment='Minimum detectable effect, relative.'),
    sa.Column('alpha', sa.Double(), nullable=False),
    sa.Column('power', sa.Double(), nullable=False),
    sa.Column('analysis_mode', sa.String(length=16), nullable=False),
    sa.Column('correction', sa.String(length=8), nullable=False),
    sa.Column('planned_start', sa.Date(), nullable=True),
    sa.Column('planned_end', sa.Date(), nullable=True),
    sa.Column('actual_start', sa.Date(), nullable=True),
    sa.Column('actual_end', sa.Date(), nullable=True),
    sa.Column('reach', sa.Double(), nullable=True, comment='RICE: units affected per quarter.'),
    sa.Column('impact', sa.Double(), nullable=True, comment='RICE: 3, 2, 1, 0.5 or 0.25.'),
    sa.Column('confidence', sa.Double(), nullable=True, comment='RICE: percent, 0-100.'),
    sa.Column('effort', sa.Double(), nullable=True, comment='RICE: person-weeks, > 0.'),
    sa.Column('rice_score', sa.Double(), nullable=True),
    sa.Column('decision', sa.String(length=16), nullable=True),
    sa.Column('learnings', sa.Text(), nullable=False),
    sa.Column('abandon_reason', sa.Text(), nullable=True),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('frozen_plan', sa.JSON(), nullable=True, comment='Analysis plan as frozen at launch (pre-registration).'),
    sa.Column('plan_frozen_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('archived_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.CheckConstraint("analysis_mode IN ('fixed', 'sequential')", name=op.f('ck_experiments_analysis_mode')),
    sa.CheckConstraint("correction IN ('holm', 'bh')", name=op.f('ck_experiments_correction')),
    sa.CheckConstraint("decision IS NULL OR decision IN ('ship', 'dont_ship', 'iterate')", name=op.f('ck_experiments_decision')),
    sa.CheckConstraint("status IN ('proposed', 'running', 'completed', 'abandoned')", name=op.f('ck_experiments_status')),
    sa.CheckConstraint('alpha > 0 AND alpha < 0.5', name=op.f('ck_experiments_alpha')),
    sa.CheckConstraint('planned_sample_size IS NULL OR planned_sample_size > 0', name=op.f('ck_experiments_sample_size')),
    sa.CheckConstraint('power > 0.5 AND power < 1', name=op.f('ck_experiments_power')),
    sa.ForeignKeyConstraint(['primary_metric_id'], ['metrics.id'], name=op.f('fk_experiments_primary_metric_id_metrics')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_experiments'))
    )
    op.create_index(
        "uq_experiments_name_lower", "experiments", [sa.func.lower(sa.column("name"))], unique=True
    )
    op.create_table('experiment_metrics',
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('metric_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.CheckConstraint("role IN ('guardrail', 'secondary')", name=op.f('ck_experiment_metrics_role')),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], name=op.f('fk_experiment_metrics_experiment_id_experiments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['metric_id'], ['metrics.id'], name=op.f('fk_experiment_metrics_metric_id_metrics')),
    sa.PrimaryKeyConstraint('experiment_id', 'metric_id', name=op.f('pk_experiment_metrics'))
    )
    op.create_table('report_artifacts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=500), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], name=op.f('fk_report_artifacts_experiment_id_experiments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_artifacts')),
    sa.UniqueConstraint('key', name=op.f('uq_report_artifacts_key'))
    )
    op.create_table('variants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('weight', sa.Double(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False, comment='0 is the control.'),
    sa.CheckConstraint('weight > 0 AND weight < 1', name=op.f('ck_variants_weight')),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], name=op.f('fk_variants_experiment_id_experiments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_variants')),
    sa.UniqueConstraint('experiment_id', 'name', name='uq_variants_experiment_name')
    )


def downgrade() -> None:
    op.drop_table('variants')
    op.drop_table('report_artifacts')
    op.drop_table('experiment_metrics')
    op.drop_index("uq_experiments_name_lower", table_name="experiments")
    op.drop_table('experiments')
    op.drop_table('metrics')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_entity')

    op.drop_table('audit_log')
    op.drop_table('api_keys')
