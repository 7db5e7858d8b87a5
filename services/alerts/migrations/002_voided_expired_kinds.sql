-- Two new kinds from settlement: payment.hold.voided (VOIDED) and payment.hold.expired (EXPIRED).
ALTER TABLE alerts DROP CONSTRAINT alerts_kind_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_kind_check CHECK (kind IN ('AUTHORIZED', 'CHALLENGED', 'DECLINED', 'CAPTURED', 'REFUNDED', 'ESCROW_RELEASED', 'DISPUTE_OPENED', 'DISPUTE_RESOLVED', 'LIMITS_CHANGED', 'VOIDED', 'EXPIRED'));
