-- What is kept of each member for segments and campaigns, beside `members` (which already keeps
-- the tier, spend and order count): first and last purchase, spend and visit days in the last
-- 30/90/365 days as of `window_day` (a local day), the favourite store and category. Written by
-- the journal's writer with the purchases that change them; the profiles job moves the windows
-- when days pass (`tenant_profiles.rolled_day`).
CREATE TABLE member_profiles (
    member_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    first_purchase_at BIGINT,
    last_purchase_at BIGINT,
    window_day BIGINT NOT NULL,
    spend_30d BIGINT NOT NULL,
    spend_90d BIGINT NOT NULL,
    spend_365d BIGINT NOT NULL,
    visits_30d BIGINT NOT NULL,
    visits_90d BIGINT NOT NULL,
    visits_365d BIGINT NOT NULL,
    favourite_store TEXT,
    favourite_category TEXT,
    updated_at BIGINT NOT NULL
);

-- Spend per member and category, from purchase lines (refunds name no lines, so this is what
-- was bought): the favourite category is the one with the most.
CREATE TABLE member_categories (
    member_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    category TEXT NOT NULL,
    spend BIGINT NOT NULL,
    PRIMARY KEY (member_id, category)
);

-- Per tenant: the day the profiles' windows were last moved to, and the RFM quintile cut-offs.
CREATE TABLE tenant_profiles (
    tenant_id TEXT PRIMARY KEY,
    rolled_day BIGINT,
    rfm TEXT,
    rfm_at BIGINT
);

-- A member's consent per channel: the latest word wins; every word is kept in the log.
CREATE TABLE member_consents (
    member_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    granted BIGINT NOT NULL,
    at BIGINT NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (member_id, channel)
);

CREATE TABLE consent_log (
    id TEXT PRIMARY KEY,
    member_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    granted BIGINT NOT NULL,
    at BIGINT NOT NULL,
    source TEXT NOT NULL
);
CREATE INDEX consent_log_member ON consent_log (member_id, at);

-- Segments: a CEL condition over the profile, versioned; the current version on `segments`.
CREATE TABLE segments (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    condition TEXT NOT NULL,
    policy TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    archived_at BIGINT
);
CREATE INDEX segments_tenant ON segments (tenant_id, name);

CREATE TABLE segment_versions (
    segment_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    name TEXT NOT NULL,
    condition TEXT NOT NULL,
    policy TEXT,
    created_at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    PRIMARY KEY (segment_id, version)
);

-- Who is in each segment, as last evaluated: members join and leave as their figures change.
CREATE TABLE segment_members (
    segment_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    joined_at BIGINT NOT NULL,
    PRIMARY KEY (segment_id, member_id)
);
CREATE INDEX segment_members_member ON segment_members (member_id);

-- Members changed since an instant, for the segment tables kept in memory.
CREATE INDEX members_updated ON members (tenant_id, updated_at);
