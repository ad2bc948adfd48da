-- Campaigns and the messages they send. A campaign's definition (channels, variants, hold-out
-- share, attribution window) is JSON the application layer reads; each member of its audience
-- gets one `messages` row: held out, suppressed with the reason, or queued for the dispatcher,
-- which sends it (falling back to the next channel), defers it (quiet hours, the advertising
-- hours, caps) and records the provider's answer and delivery.
CREATE TABLE campaigns (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    segment_id TEXT NOT NULL,
    definition TEXT NOT NULL,
    status TEXT NOT NULL,
    scheduled_at BIGINT,
    started_at BIGINT,
    finished_at BIGINT,
    audience BIGINT,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX campaigns_tenant ON campaigns (tenant_id, created_at);
CREATE INDEX campaigns_due ON campaigns (status, scheduled_at);

CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    campaign_id TEXT,
    variant BIGINT NOT NULL,
    held_out BIGINT NOT NULL,
    purpose TEXT NOT NULL,
    channel TEXT NOT NULL,
    to_address TEXT NOT NULL,
    body TEXT NOT NULL,
    fallback TEXT,
    status TEXT NOT NULL,
    reason TEXT,
    detail TEXT,
    attempts BIGINT NOT NULL,
    next_at BIGINT NOT NULL,
    lease_until BIGINT,
    provider_id TEXT,
    cost BIGINT,
    parts BIGINT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT,
    delivered_at BIGINT
);
CREATE INDEX messages_due ON messages (status, next_at);
CREATE INDEX messages_member ON messages (member_id, sent_at);
CREATE INDEX messages_provider ON messages (provider_id);
CREATE INDEX messages_campaign ON messages (campaign_id, member_id);

-- A tenant's messaging accounts (credentials sealed with the server's key) and its rules of
-- respect (frequency cap, quiet hours).
CREATE TABLE channel_accounts (
    tenant_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    provider TEXT NOT NULL,
    sealed TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, channel)
);

CREATE TABLE outreach_settings (
    tenant_id TEXT PRIMARY KEY,
    settings TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
