-- wristpay:no-transaction
-- What a band spent today: its holds created since midnight UTC (see src/band-limits.ts).
-- holds is the ledger's largest table: CONCURRENTLY builds the index without blocking holds
-- being placed (platform/db.ts runs this file outside a transaction).
CREATE INDEX CONCURRENTLY IF NOT EXISTS holds_by_device_day ON holds (device_id, created_at);
