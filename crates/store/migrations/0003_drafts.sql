-- A tenant's programme draft: edited freely, previewed, then published as a new version.

CREATE TABLE programme_drafts (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id),
    definition TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);
