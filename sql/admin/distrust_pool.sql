-- Stops trusting a user pool trust_pool.sql trusted: its tokens, cached verifications
-- included, are refused by every worker within a second. Its users' rows stay.
--
--   psql "$ADMIN_URL" -v pool_id=eu-west-1_AbC123 -f sql/admin/distrust_pool.sql
\ir lib/settings.psql
\if :{?pool_id}
\else
\set pool_id ''
\endif

BEGIN;
SELECT set_config('articles_admin.pool_id', :'pool_id', true) \gset articles_admin_
DO $$
BEGIN
  DELETE FROM trusted_pools WHERE pool_id = current_setting('articles_admin.pool_id');
  IF NOT FOUND THEN
    RAISE EXCEPTION 'pool "%" is not trusted; nothing was changed', current_setting('articles_admin.pool_id');
  END IF;
END
$$;
SELECT format('pool %s is not trusted now', :'pool_id');
COMMIT;
