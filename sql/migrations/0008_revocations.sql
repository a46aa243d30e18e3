-- Revocation, which Cognito cannot push to a service that checks tokens itself.
-- A user's tokens issued at or before tokens_valid_after (in whole seconds) are refused
-- (sql/admin/revoke_tokens.sql); a change to it notifies articles_users_changed (0005).
ALTER TABLE users ADD COLUMN tokens_valid_after timestamptz;

-- Sign-in sessions revoked one by one, by the origin_jti their tokens carry
-- (sql/admin/revoke_session.sql). The workers keep the set in memory and reload it on every
-- change, which notifies articles_sessions_revoked.
CREATE TABLE revoked_sessions (
  origin_jti text        PRIMARY KEY CONSTRAINT revoked_sessions_origin_jti_check CHECK (origin_jti <> ''),
  revoked_at timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT ON revoked_sessions TO articles_app;

CREATE TRIGGER revoked_sessions_notify_change
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON revoked_sessions
  FOR EACH STATEMENT EXECUTE FUNCTION notify_channel('articles_sessions_revoked');
