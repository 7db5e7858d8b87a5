-- Retention (platform/retention.ts) deletes the oldest rows of these tables in small batches
-- every run; without an index each batch would scan the table for rows past the cutoff.
-- processed_events is not indexed: it grows with consumed device events only, a few rows per band.
CREATE INDEX IF NOT EXISTS idempotency_keys_created_at ON idempotency_keys (created_at);

CREATE INDEX IF NOT EXISTS outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;
