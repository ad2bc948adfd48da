-- The member page's own access: card codes a cashier can type, one-time sign-in codes (stored
-- hashed, with expiry and an attempt count), member sessions (token stored hashed) and the
-- per-tenant secret that signs sign-in links.

CREATE TABLE member_cards (
    tenant_id TEXT NOT NULL,
    code TEXT NOT NULL,
    member_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, code)
);
CREATE UNIQUE INDEX member_cards_member ON member_cards (member_id);

CREATE TABLE member_sign_in_codes (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX member_sign_in_codes_member ON member_sign_in_codes (member_id, created_at);

CREATE TABLE member_sessions (
    token_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE member_link_secrets (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id),
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
