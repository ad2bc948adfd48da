-- Member search without diacritics and by part of a phone: a folded name and e-mail
-- (`members::search_name_key`, "Trần Thị Đào" -> "tran thi dao") and the phone's digits in two
-- spellings (`members::search_phone_key`). Existing members are filled in by the migration
-- runner right after these statements (`members::backfill_search_keys`).
ALTER TABLE members ADD COLUMN search_name TEXT;
ALTER TABLE members ADD COLUMN search_phone TEXT;
CREATE INDEX members_search ON members (tenant_id, search_name, search_phone);
