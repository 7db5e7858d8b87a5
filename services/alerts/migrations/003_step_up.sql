-- A CHALLENGED alert carries the gateway's step-up (payment.challenged's step_up): what the phone
-- has the band sign before it confirms the payment. All three or none: an older challenged
-- alert, or one whose event had no usable step-up, has none, and no other kind ever has one.
-- The nonce is not a secret (the band's signature is the proof), but it is never logged.
ALTER TABLE alerts ADD COLUMN step_up_challenge_id text;
ALTER TABLE alerts ADD COLUMN step_up_nonce bytea;
ALTER TABLE alerts ADD COLUMN step_up_expires_at timestamptz;
ALTER TABLE alerts ADD CONSTRAINT alerts_step_up_whole CHECK ((step_up_challenge_id IS NULL) = (step_up_nonce IS NULL) AND (step_up_nonce IS NULL) = (step_up_expires_at IS NULL));
ALTER TABLE alerts ADD CONSTRAINT alerts_step_up_only_challenged CHECK (step_up_challenge_id IS NULL OR kind = 'CHALLENGED');
