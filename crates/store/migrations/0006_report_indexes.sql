-- Indexes for the dashboard and the member pages, measured with `patron bench pages` on the
-- demo's 10,000 members and 108,000 events (docs/benchmarks.md). Covering where a report sums
-- a column, so the sum is read from the index alone. Each costs one more index entry per
-- event, transaction, entry or lot written.
CREATE INDEX events_kind_occurred ON events (tenant_id, kind, occurred_at, member_id, amount, refunded_amount, store_code);
CREATE INDEX events_member ON events (member_id, kind, occurred_at);
CREATE INDEX ledger_transactions_occurred ON ledger_transactions (tenant_id, occurred_at, kind, id);
CREATE INDEX ledger_entries_amounts ON ledger_entries (transaction_id, account, amount);
-- The new index starts with the transaction id, so it serves every lookup the old one did.
DROP INDEX ledger_entries_transaction;
CREATE INDEX lots_open_tenant ON lots (tenant_id, expires_at, remaining) WHERE remaining > 0;
