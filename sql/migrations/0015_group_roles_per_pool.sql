-- A Cognito group belongs to one user pool: each pool's administrators name their own groups,
-- so a group's role is granted for the groups of one pool (grant_group_role.sql, pool_id; empty
-- for the worker's own pool, which every grant before this migration was for). A group of the
-- same name in another pool has no role through it.
ALTER TABLE group_roles ADD COLUMN pool_id text NOT NULL DEFAULT ''
  CONSTRAINT group_roles_pool_id_check CHECK (pool_id = '' OR pool_id ~ '^[a-z0-9-]+_[A-Za-z0-9]+$');
ALTER TABLE group_roles DROP CONSTRAINT group_roles_pkey;
ALTER TABLE group_roles ADD PRIMARY KEY (pool_id, group_name);
