-- User pools trusted beside the worker's own (AWS_USER_POOLS_ID), managed with
-- sql/admin/trust_pool.sql and distrust_pool.sql: each pool's tokens are accepted by the same
-- rules (both of its issuers, its app clients, its token kinds, keys from its JWKS, by default
-- the issuer's own). The change feed carries every change to the workers, which keep the table
-- in memory, so a trust or a distrust applies within a second.
CREATE TABLE trusted_pools (
  pool_id    text        PRIMARY KEY CONSTRAINT trusted_pools_pool_id_check CHECK (pool_id ~ '^[a-z0-9-]+_[A-Za-z0-9]+$'),
  -- Comma-separated, no empty one.
  client_ids text        NOT NULL CONSTRAINT trusted_pools_client_ids_check CHECK (client_ids ~ '^[^,[:space:]]+(,[^,[:space:]]+)*$'),
  token_use  text        NOT NULL DEFAULT 'id' CONSTRAINT trusted_pools_token_use_check CHECK (token_use IN ('id', 'access', 'id,access')),
  jwks_url   text        CONSTRAINT trusted_pools_jwks_url_check CHECK (jwks_url ~ '^https?://[^[:space:]]+$'),
  trusted_at timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT ON trusted_pools TO articles_app, articles_feed;
ALTER PUBLICATION articles_fcgi ADD TABLE trusted_pools;

-- A principal is a pool and a sub: the same sub in two pools is two principals. A row without
-- a pool belongs to the worker's own pool (every row before this migration does).
ALTER TABLE users ADD COLUMN pool_id text;
ALTER TABLE users DROP CONSTRAINT users_cognito_sub_key;
CREATE UNIQUE INDEX users_pool_sub_key ON users ((coalesce(pool_id, '')), cognito_sub);
-- A first token of a trusted pool binds its user to that pool and sub.
GRANT UPDATE (pool_id) ON users TO articles_app;
