-- A member whose stored state breaks an invariant (balance differs from the sum of lots, or the
-- engine's result for one of its events did) is quarantined: its events are refused with
-- `member_quarantined` until an operator releases it, and nothing else stops.
ALTER TABLE members ADD COLUMN quarantined_at BIGINT;
ALTER TABLE members ADD COLUMN quarantine_reason TEXT;
