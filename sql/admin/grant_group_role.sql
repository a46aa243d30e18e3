-- Gives the members of a Cognito group (by their tokens' cognito:groups) a role: reader (read
-- only), writer (change their own articles) or admin (change any). A group belongs to one user
-- pool: without pool_id, the worker's own pool (AWS_USER_POOLS_ID); with it, a pool trusted
-- with trust_pool.sql, whose tokens alone the grant applies to. A principal in several mapped
-- groups has the highest of their roles; one in none, the worker's COGNITO_DEFAULT_ROLE.
-- Applies on every worker within a second.
--
--   psql "$ADMIN_URL" -v group=editors -v role=admin [-v pool_id=eu-west-1_AbC123] -f sql/admin/grant_group_role.sql
\ir lib/settings.psql
\if :{?group}
\else
\set group ''
\endif
\if :{?role}
\else
\set role ''
\endif
\if :{?pool_id}
\else
\set pool_id ''
\endif

BEGIN;
SELECT set_config('articles_admin.group', :'group', true), set_config('articles_admin.role', :'role', true),
       set_config('articles_admin.pool_id', :'pool_id', true) \gset articles_admin_
DO $$
BEGIN
  IF current_setting('articles_admin.group') = '' THEN
    RAISE EXCEPTION 'a group is required: -v group=NAME (a Cognito group, as in cognito:groups)';
  END IF;
  IF current_setting('articles_admin.role') NOT IN ('reader', 'writer', 'admin') THEN
    RAISE EXCEPTION 'a role is required: -v role=reader, writer or admin (got "%")', current_setting('articles_admin.role');
  END IF;
  IF current_setting('articles_admin.pool_id') !~ '^([a-z0-9-]+_[A-Za-z0-9]+)?$' THEN
    RAISE EXCEPTION 'pool_id must be a user pool id, e.g. eu-west-1_AbC123 (got "%")', current_setting('articles_admin.pool_id');
  END IF;
END
$$;
INSERT INTO group_roles (pool_id, group_name, role) VALUES (:'pool_id', :'group', :'role')
ON CONFLICT (pool_id, group_name) DO UPDATE SET role = EXCLUDED.role, granted_at = now();
SELECT format('group %s%s has the role %s', group_name, CASE WHEN pool_id = '' THEN '' ELSE ' of pool ' || pool_id END, role)
FROM group_roles WHERE pool_id = :'pool_id' AND group_name = :'group';
COMMIT;
