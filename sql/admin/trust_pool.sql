-- Trusts another Cognito user pool beside the worker's own (AWS_USER_POOLS_ID): its tokens, for
-- the app clients given, are accepted by the same rules, its keys fetched from jwks_url or, by
-- default, from its issuer. Trusting a pool again replaces its settings. Applies on every
-- worker within a second.
--
--   psql "$ADMIN_URL" -v pool_id=eu-west-1_AbC123 -v client_ids=abc,def [-v token_use=id,access] \
--        [-v jwks_url=https://...] -f sql/admin/trust_pool.sql
\ir lib/settings.psql
\if :{?pool_id}
\else
\set pool_id ''
\endif
\if :{?client_ids}
\else
\set client_ids ''
\endif
\if :{?token_use}
\else
\set token_use id
\endif
\if :{?jwks_url}
\else
\set jwks_url ''
\endif

BEGIN;
SELECT set_config('articles_admin.pool_id', :'pool_id', true), set_config('articles_admin.client_ids', :'client_ids', true),
       set_config('articles_admin.token_use', :'token_use', true), set_config('articles_admin.jwks_url', :'jwks_url', true)
       \gset articles_admin_
DO $$
BEGIN
  IF current_setting('articles_admin.pool_id') !~ '^[a-z0-9-]+_[A-Za-z0-9]+$' THEN
    RAISE EXCEPTION 'a pool id is required: -v pool_id=REGION_ID, e.g. eu-west-1_AbC123 (got "%")', current_setting('articles_admin.pool_id');
  END IF;
  IF current_setting('articles_admin.client_ids') !~ '^[^,[:space:]]+(,[^,[:space:]]+)*$' THEN
    RAISE EXCEPTION 'app client ids are required: -v client_ids=ID[,ID...] (got "%")', current_setting('articles_admin.client_ids');
  END IF;
  IF current_setting('articles_admin.token_use') NOT IN ('id', 'access', 'id,access') THEN
    RAISE EXCEPTION 'token_use must be id, access or id,access (got "%")', current_setting('articles_admin.token_use');
  END IF;
  IF current_setting('articles_admin.jwks_url') <> '' AND current_setting('articles_admin.jwks_url') !~ '^https?://[^[:space:]]+$' THEN
    RAISE EXCEPTION 'jwks_url must be an https:// or http:// URL (got "%")', current_setting('articles_admin.jwks_url');
  END IF;
END
$$;
INSERT INTO trusted_pools (pool_id, client_ids, token_use, jwks_url)
VALUES (:'pool_id', :'client_ids', :'token_use', nullif(:'jwks_url', ''))
ON CONFLICT (pool_id) DO UPDATE
  SET client_ids = EXCLUDED.client_ids, token_use = EXCLUDED.token_use, jwks_url = EXCLUDED.jwks_url, trusted_at = now();
SELECT format('trusted pool %s for %s (%s tokens, keys from %s)', pool_id, client_ids, token_use,
              coalesce(jwks_url, 'its issuer'))
FROM trusted_pools WHERE pool_id = :'pool_id';
COMMIT;
