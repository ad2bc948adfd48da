-- The dashboard asks `purchase_gaps` for one scope's purchases of a run of days whose previous
-- (or second previous) purchase is before the run, summed per tier. Keyed with the tier before
-- the day, that walked every tier's rows of the scope; keyed by day first (the tier last, for
-- uniqueness) it reads only the run's rows.
CREATE TABLE purchase_gaps_by_day (
    tenant_id TEXT NOT NULL,
    store_scope TEXT NOT NULL,
    tier_scope TEXT NOT NULL,
    nth BIGINT NOT NULL,
    day BIGINT NOT NULL,
    before_day BIGINT NOT NULL,
    purchases BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, store_scope, nth, day, before_day, tier_scope)
);

INSERT INTO purchase_gaps_by_day (tenant_id, store_scope, tier_scope, nth, day, before_day, purchases)
SELECT tenant_id, store_scope, tier_scope, nth, day, before_day, purchases FROM purchase_gaps;

DROP TABLE purchase_gaps;

ALTER TABLE purchase_gaps_by_day RENAME TO purchase_gaps;
