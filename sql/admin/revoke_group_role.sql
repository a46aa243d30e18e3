-- Takes a Cognito group's role away: its members have the role of their other mapped groups,
-- or the worker's COGNITO_DEFAULT_ROLE. Applies on every worker within a second.
--
--   psql "$ADMIN_URL" -v group=editors -f sql/admin/revoke_group_role.sql
\ir lib/settings.psql
\if :{?group}
\else
\set group ''
\endif

BEGIN;
SELECT set_config('articles_admin.group', :'group', true) \gset articles_admin_
DO $$
BEGIN
  IF current_setting('articles_admin.group') = '' THEN
    RAISE EXCEPTION 'a group is required: -v group=NAME';
  END IF;
  DELETE FROM group_roles WHERE group_name = current_setting('articles_admin.group');
  IF NOT FOUND THEN
    RAISE EXCEPTION 'group "%" has no role; nothing was changed', current_setting('articles_admin.group');
  END IF;
END
$$;
SELECT format('group %s has no role now', :'group');
COMMIT;
