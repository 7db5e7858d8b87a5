-- wristpay:no-transaction
-- Retention (platform/retention.ts) deletes the oldest rows of these tables in small batches
-- every run; without an index each batch would scan the table for rows past the cutoff.
-- processed_events is not indexed: it grows with consumed device events only, a few rows per band.
-- These tables already hold rows when this runs (it came after them), and can be large: the
-- indexes are built CONCURRENTLY, outside a transaction (platform/db.ts NO_TRANSACTION_MARKER),
-- so writes go on meanwhile.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idempotency_keys_created_at ON idempotency_keys (created_at);

CREATE INDEX CONCURRENTLY IF NOT EXISTS outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;
