-- Roles from Cognito groups (sql/admin/grant_group_role.sql, revoke_group_role.sql): a
-- principal's role is the highest of its token's cognito:groups' roles here, else the worker's
-- COGNITO_DEFAULT_ROLE. reader: read only; writer: change one's own; admin: change any. The
-- change feed carries every change to the workers (each keeps the table in memory), so a
-- grant or revocation applies within a second, without a restart.
CREATE TABLE group_roles (
  group_name text        PRIMARY KEY CONSTRAINT group_roles_group_name_check CHECK (group_name <> ''),
  role       text        NOT NULL CONSTRAINT group_roles_role_check CHECK (role IN ('reader', 'writer', 'admin')),
  granted_at timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT ON group_roles TO articles_app, articles_feed;
ALTER PUBLICATION articles_fcgi ADD TABLE group_roles;
