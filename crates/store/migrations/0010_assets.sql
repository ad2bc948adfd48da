-- Assets other than points (money: cashback, store credit, gift cards; stamps per card): each
-- member's balance of each, the sum of its ledger entries and of its lots (`lots.asset`).
-- Points stay in `members.points_balance`, read on every purchase.
CREATE TABLE member_balances (
    member_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    asset TEXT NOT NULL,
    balance BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (member_id, asset)
);
CREATE INDEX member_balances_asset ON member_balances (tenant_id, asset);

-- The lines of each purchase, as the till sent them: stamps, challenges and analytics read them.
CREATE TABLE event_lines (
    tenant_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    line BIGINT NOT NULL,
    sku TEXT NOT NULL,
    category TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    amount BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, event_id, line)
);
CREATE INDEX event_lines_category ON event_lines (tenant_id, category);
