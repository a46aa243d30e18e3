-- Gives the members of a Cognito group (by their tokens' cognito:groups) a role: reader (read
-- only), writer (change their own articles) or admin (change any). A principal in several
-- mapped groups has the highest of their roles; one in none, the worker's COGNITO_DEFAULT_ROLE.
-- Applies on every worker within a second.
--
--   psql "$ADMIN_URL" -v group=editors -v role=admin -f sql/admin/grant_group_role.sql
\ir lib/settings.psql
\if :{?group}
\else
\set group ''
\endif
\if :{?role}
\else
\set role ''
\endif

BEGIN;
SELECT set_config('articles_admin.group', :'group', true), set_config('articles_admin.role', :'role', true) \gset articles_admin_
DO $$
BEGIN
  IF current_setting('articles_admin.group') = '' THEN
    RAISE EXCEPTION 'a group is required: -v group=NAME (a Cognito group, as in cognito:groups)';
  END IF;
  IF current_setting('articles_admin.role') NOT IN ('reader', 'writer', 'admin') THEN
    RAISE EXCEPTION 'a role is required: -v role=reader, writer or admin (got "%")', current_setting('articles_admin.role');
  END IF;
END
$$;
INSERT INTO group_roles (group_name, role) VALUES (:'group', :'role')
ON CONFLICT (group_name) DO UPDATE SET role = EXCLUDED.role, granted_at = now();
SELECT format('group %s has the role %s', group_name, role) FROM group_roles WHERE group_name = :'group';
COMMIT;
