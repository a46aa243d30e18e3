-- The role the worker connects as: it may read users, bind a user to its Cognito `sub`, and
-- read and create articles; nothing else. Roles belong to the whole cluster, so the role is
-- created only once and each database grants it rights. Creating it needs CREATEROLE; give it a
-- password afterwards if the server asks for one (ALTER ROLE articles_app PASSWORD '...').
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'articles_app') THEN
    CREATE ROLE articles_app LOGIN;
  END IF;
EXCEPTION
  -- Another database's migration created it at the same moment.
  WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

GRANT SELECT, UPDATE (cognito_sub) ON users TO articles_app;
GRANT SELECT, INSERT ON articles TO articles_app;
