-- Provisioning stores an email only when Cognito says it is verified: a user whose address is
-- not verified (a pool that confirms by phone, AdminConfirmSignUp, auto-confirm) has none until
-- a verified event or an administrator gives it one, so nobody can take an address first.
ALTER TABLE users ALTER COLUMN email DROP NOT NULL;

-- Each signed provisioning request is accepted once, on every worker and host: its signature
-- is kept while a request with its timestamp could still be accepted (5 minutes either way),
-- and a little longer for hosts whose clocks differ.
CREATE TABLE provisioning_requests (
  signature bytea       PRIMARY KEY,
  signed_at timestamptz NOT NULL
);
GRANT SELECT, INSERT, DELETE ON provisioning_requests TO articles_app;
