-- Refunds give back points paid, purchases can be voided, every event names who sent it, and
-- each tenant bounds the amount of one purchase.

-- A purchase's points paid given back so far by its refunds, and when a manager voided it.
ALTER TABLE events ADD COLUMN points_returned BIGINT;
ALTER TABLE events ADD COLUMN voided_at BIGINT;
-- Who sent the event, as the audit log names it: `user:<id>` for staff, `key:<id>` for an API
-- key, `member:<id>` from the member page, `cli` from the command line (NULL when not known:
-- CSV imports, and events stored before).
ALTER TABLE events ADD COLUMN actor TEXT;

-- A refund finds the lots its purchase's points were paid from.
CREATE INDEX ledger_transactions_event ON ledger_transactions (tenant_id, event_id);
CREATE INDEX lot_allocations_transaction ON lot_allocations (transaction_id);

-- Largest amount of one purchase (refused above it), and the amount above which the till asks
-- the cashier to confirm; NULL is the default (`PURCHASE_AMOUNT_MAX_DEFAULT`,
-- `PURCHASE_AMOUNT_CONFIRM_DEFAULT`).
ALTER TABLE tenants ADD COLUMN purchase_amount_max BIGINT;
ALTER TABLE tenants ADD COLUMN purchase_amount_confirm BIGINT;
