-- Takes a Cognito group's role away: its members have the role of their other mapped groups,
-- or the worker's COGNITO_DEFAULT_ROLE. Without pool_id, the group of the worker's own pool;
-- with it, the group of that trusted pool. Applies on every worker within a second.
--
--   psql "$ADMIN_URL" -v group=editors [-v pool_id=eu-west-1_AbC123] -f sql/admin/revoke_group_role.sql
\ir lib/settings.psql
\if :{?group}
\else
\set group ''
\endif
\if :{?pool_id}
\else
\set pool_id ''
\endif

BEGIN;
SELECT set_config('articles_admin.group', :'group', true), set_config('articles_admin.pool_id', :'pool_id', true) \gset articles_admin_
DO $$
BEGIN
  IF current_setting('articles_admin.group') = '' THEN
    RAISE EXCEPTION 'a group is required: -v group=NAME';
  END IF;
  DELETE FROM group_roles
  WHERE pool_id = current_setting('articles_admin.pool_id') AND group_name = current_setting('articles_admin.group');
  IF NOT FOUND THEN
    RAISE EXCEPTION 'group "%"% has no role; nothing was changed', current_setting('articles_admin.group'),
      CASE WHEN current_setting('articles_admin.pool_id') = '' THEN '' ELSE ' of pool ' || current_setting('articles_admin.pool_id') END;
  END IF;
END
$$;
SELECT format('group %s%s has no role now', :'group', CASE WHEN :'pool_id' = '' THEN '' ELSE ' of pool ' || :'pool_id' END);
COMMIT;
