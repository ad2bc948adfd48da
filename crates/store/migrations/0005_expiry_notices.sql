-- Which expiring points a member has been told about (webhook topic points.expiring): one row
-- per member and expiry instant, so each reminder goes out once.
CREATE TABLE expiry_notices (
    tenant_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    points BIGINT NOT NULL,
    notified_at BIGINT NOT NULL,
    PRIMARY KEY (member_id, expires_at)
);
