-- Patron's engine schema. Portable between SQLite and PostgreSQL: ids are TEXT made by the
-- application (UUIDv7), instants are BIGINT microseconds since the Unix epoch, flags are BIGINT
-- 0/1, JSON is TEXT. No sequences, no advisory locks.

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    currency TEXT NOT NULL,
    time_zone TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    scope TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);

CREATE TABLE stores (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, code)
);

CREATE TABLE programme_versions (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    version BIGINT NOT NULL,
    effective_from BIGINT NOT NULL,
    definition TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, version)
);

CREATE TABLE members (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    phone TEXT,
    email TEXT,
    name TEXT,
    birthday TEXT,
    gender TEXT,
    city TEXT,
    tags TEXT NOT NULL,
    attributes TEXT NOT NULL,
    tier TEXT NOT NULL,
    tier_since BIGINT NOT NULL,
    tier_below_since BIGINT,
    tier_held_until BIGINT,
    points_balance BIGINT NOT NULL,
    lifetime_spend BIGINT NOT NULL,
    lifetime_points BIGINT NOT NULL,
    order_count BIGINT NOT NULL,
    day_key TEXT,
    day_points BIGINT NOT NULL,
    rule_hits TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX members_phone ON members (tenant_id, phone);

CREATE TABLE member_periods (
    member_id TEXT NOT NULL,
    month BIGINT NOT NULL,
    spend BIGINT NOT NULL,
    points BIGINT NOT NULL,
    PRIMARY KEY (member_id, month)
);

CREATE TABLE events (
    tenant_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    member_id TEXT,
    occurred_at BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL,
    body_hash TEXT NOT NULL,
    result TEXT NOT NULL,
    store_code TEXT,
    amount BIGINT,
    eligible_amount BIGINT,
    points_earned BIGINT,
    lot_id TEXT,
    refunded_amount BIGINT,
    points_taken_back BIGINT,
    month BIGINT,
    PRIMARY KEY (tenant_id, event_id)
);

CREATE TABLE ledger_transactions (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    event_id TEXT,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX ledger_transactions_member ON ledger_transactions (member_id, occurred_at);

CREATE TABLE ledger_entries (
    transaction_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    account TEXT NOT NULL,
    member_id TEXT,
    asset TEXT NOT NULL,
    amount BIGINT NOT NULL
);
CREATE INDEX ledger_entries_transaction ON ledger_entries (transaction_id);

CREATE TABLE lots (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    asset TEXT NOT NULL,
    earned BIGINT NOT NULL,
    remaining BIGINT NOT NULL,
    matures_at BIGINT NOT NULL,
    expires_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX lots_open ON lots (member_id) WHERE remaining <> 0;
CREATE INDEX lots_expiring ON lots (expires_at) WHERE remaining > 0;

CREATE TABLE lot_allocations (
    transaction_id TEXT NOT NULL,
    lot_id TEXT NOT NULL,
    points BIGINT NOT NULL
);

CREATE TABLE tier_history (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    from_tier TEXT NOT NULL,
    to_tier TEXT NOT NULL,
    reason TEXT NOT NULL,
    qualifying_value BIGINT NOT NULL,
    event_id TEXT,
    at BIGINT NOT NULL
);
CREATE INDEX tier_history_member ON tier_history (member_id, at);

CREATE TABLE rewards (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    cost BIGINT NOT NULL,
    stock BIGINT,
    per_member_limit BIGINT,
    valid_from BIGINT,
    valid_until BIGINT,
    stores TEXT NOT NULL,
    voucher_valid_days BIGINT NOT NULL,
    active BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE vouchers (
    code TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    reward_id TEXT NOT NULL,
    cost BIGINT NOT NULL,
    status TEXT NOT NULL,
    redemption_transaction TEXT NOT NULL,
    allocations TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    used_store TEXT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX vouchers_member ON vouchers (member_id);
CREATE INDEX vouchers_issued_expiry ON vouchers (expires_at) WHERE status = 'issued';
