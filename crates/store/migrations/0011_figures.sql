-- Figures for the owner's dashboard, kept by the writers in the transactions that change what
-- they count (`figures.rs`), so a report adds up a few hundred rows instead of scanning the
-- events. Sums are kept in two BIGINT halves: `high` = value / 10^6, `low` = value % 10^6.
-- The migration runner fills them in for existing tenants (`figures::rebuild_all`).

-- Per tenant, figure, part (a tier, a ledger kind, a reward, or ''), store ('' for none) and
-- local day (days since 1970-01-01 in the tenant's zone; the smallest BIGINT for figures
-- that belong to no day).
CREATE TABLE daily_figures (
    tenant_id TEXT NOT NULL,
    figure TEXT NOT NULL,
    part TEXT NOT NULL,
    store_code TEXT NOT NULL,
    day BIGINT NOT NULL,
    high BIGINT NOT NULL,
    low BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, figure, store_code, day, part)
);

-- Purchases per scope (a store or '' for every store; a tier at the purchase or '' for every
-- tier), day, and the day of the member's purchase before it in the scope (`nth` 1) or the
-- one before that (`nth` 2); the smallest BIGINT when there is none.
CREATE TABLE purchase_gaps (
    tenant_id TEXT NOT NULL,
    store_scope TEXT NOT NULL,
    tier_scope TEXT NOT NULL,
    nth BIGINT NOT NULL,
    day BIGINT NOT NULL,
    before_day BIGINT NOT NULL,
    purchases BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, store_scope, tier_scope, nth, day, before_day)
);

-- What positive lots hold, per asset and expiry instant (the largest BIGINT: never).
CREATE TABLE lot_figures (
    tenant_id TEXT NOT NULL,
    asset TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    high BIGINT NOT NULL,
    low BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, asset, expires_at)
);

-- The buyer's tier at a purchase (earlier purchases get the member's tier at this migration).
ALTER TABLE events ADD COLUMN tier TEXT;
UPDATE events SET tier = (SELECT m.tier FROM members m WHERE m.id = events.member_id) WHERE kind = 'purchase';
