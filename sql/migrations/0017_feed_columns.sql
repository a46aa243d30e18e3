-- The change feed's publication carries only the columns the workers use (PostgreSQL 15 column
-- lists): the keys of users and articles (which cached answers a change makes stale), and the
-- whole rows of the small tables the workers keep in memory. No email, name or signature
-- leaves the database through it, and each worker host's walsender decodes and sends less.
ALTER PUBLICATION articles_fcgi SET TABLE
  users (id), articles (id), revoked_sessions (origin_jti), group_roles (pool_id, group_name, role),
  trusted_pools (pool_id, client_ids, token_use, jwks_url);
