-- How many payment tokens tokenization has provisioned to each band, heard from token.provisioned,
-- so GetDevice/ListDevices can tell the wallet whether a paired band is ready to pay.
ALTER TABLE devices ADD COLUMN tokens_provisioned integer NOT NULL DEFAULT 0 CHECK (tokens_provisioned >= 0);
ALTER TABLE devices ADD COLUMN last_token_provisioned_at timestamptz;

-- Events a consumer has already applied (JetStream redelivers after a crash or a missed ack, and
-- only drops republished duplicates within its window), so a redelivery changes nothing twice.
CREATE TABLE processed_events (
  consumer text NOT NULL,
  event_id text NOT NULL,
  processed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, event_id)
);
