-- Revokes one sign-in session: every token that carries this origin_jti (the ID and access
-- tokens of one sign-in, and those refreshed from it) is refused from the next request on,
-- by every worker, also after a restart. Cognito's own sign-out cannot reach the workers.
--
--   psql "$ADMIN_URL" -v origin_jti=0c9f...-... -f sql/admin/revoke_session.sql
\ir lib/settings.psql
\if :{?origin_jti}
\else
\set origin_jti ''
\endif

BEGIN;
SELECT set_config('articles_admin.origin_jti', :'origin_jti', true) \gset articles_admin_
DO $$
BEGIN
  IF current_setting('articles_admin.origin_jti') = '' THEN
    RAISE EXCEPTION 'an origin_jti is required: -v origin_jti=ID (the token''s origin_jti claim)';
  END IF;
END
$$;
INSERT INTO revoked_sessions (origin_jti) VALUES (:'origin_jti') ON CONFLICT (origin_jti) DO NOTHING;
SELECT format('revoked session %s (since %s)', origin_jti, revoked_at) FROM revoked_sessions WHERE origin_jti = :'origin_jti';
COMMIT;
