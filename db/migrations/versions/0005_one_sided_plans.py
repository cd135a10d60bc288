"""one-sided plans: experiments.alternative, the Gaussian prior on the relative lift
(experiments.prior_lift_mean / prior_lift_sd) and guardrail non-inferiority margins
(experiment_metrics.margin)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 18:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ALTERNATIVE = "alternative IN ('two-sided', 'greater', 'less')"
PRIOR = ("(prior_lift_mean IS NULL) = (prior_lift_sd IS NULL) AND "
         "(prior_lift_sd IS NULL OR prior_lift_sd > 0)")
MARGIN = "margin IS NULL OR (margin > 0 AND margin < 1 AND role = 'guardrail')"
ALTERNATIVE_COMMENT = ("The primary metric's test: two-sided, or one-sided greater "
                       "(treatment > control) / less.")
PRIOR_MEAN_COMMENT = 'Bayesian readout: mean of a Gaussian prior on the relative lift.'
PRIOR_SD_COMMENT = 'Bayesian readout: sd of that prior; NULL (both) = flat prior.'
MARGIN_COMMENT = 'Guardrails: relative non-inferiority margin (0.01 = at most 1% worse).'


def upgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        # SQLite's ADD COLUMN takes a column CHECK (checked against the stored rows); a batch
        # rebuild of `experiments` would drop its expression index, see 0003.
        bind = op.get_bind()
        bind.exec_driver_sql(
            "ALTER TABLE experiments ADD COLUMN alternative VARCHAR(16) DEFAULT 'two-sided' "
            f"NOT NULL CONSTRAINT ck_experiments_alternative CHECK ({ALTERNATIVE})")
        bind.exec_driver_sql("ALTER TABLE experiments ADD COLUMN prior_lift_mean DOUBLE")
        bind.exec_driver_sql(
            "ALTER TABLE experiments ADD COLUMN prior_lift_sd DOUBLE "
            f"CONSTRAINT ck_experiments_prior CHECK ({PRIOR})")
        bind.exec_driver_sql(
            "ALTER TABLE experiment_metrics ADD COLUMN margin DOUBLE "
            f"CONSTRAINT ck_experiment_metrics_margin CHECK ({MARGIN})")
        return
    op.add_column('experiments', sa.Column(
        'alternative', sa.String(length=16), server_default='two-sided', nullable=False,
        comment=ALTERNATIVE_COMMENT))
    op.add_column('experiments', sa.Column('prior_lift_mean', sa.Double(), nullable=True,
                                           comment=PRIOR_MEAN_COMMENT))
    op.add_column('experiments', sa.Column('prior_lift_sd', sa.Double(), nullable=True,
                                           comment=PRIOR_SD_COMMENT))
    op.add_column('experiment_metrics', sa.Column('margin', sa.Double(), nullable=True,
                                                  comment=MARGIN_COMMENT))
    op.create_check_constraint(op.f('ck_experiments_alternative'), 'experiments', ALTERNATIVE)
    op.create_check_constraint(op.f('ck_experiments_prior'), 'experiments', PRIOR)
    op.create_check_constraint(op.f('ck_experiment_metrics_margin'), 'experiment_metrics',
                               MARGIN)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        # Each CHECK belongs to its column and goes with it (the prior's with prior_lift_sd,
        # dropped before the prior_lift_mean it reads).
        bind = op.get_bind()
        bind.exec_driver_sql('ALTER TABLE experiment_metrics DROP COLUMN margin')
        for column in ('prior_lift_sd', 'prior_lift_mean', 'alternative'):
            bind.exec_driver_sql(f'ALTER TABLE experiments DROP COLUMN {column}')
        return
    op.drop_constraint(op.f('ck_experiment_metrics_margin'), 'experiment_metrics', type_='check')
    op.drop_constraint(op.f('ck_experiments_prior'), 'experiments', type_='check')
    op.drop_constraint(op.f('ck_experiments_alternative'), 'experiments', type_='check')
    op.drop_column('experiment_metrics', 'margin')
    for column in ('prior_lift_sd', 'prior_lift_mean', 'alternative'):
        op.drop_column('experiments', column)
