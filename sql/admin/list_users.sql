-- Lists every user and machine client (kind), with their article count.
--
--   psql "$ADMIN_URL" -f sql/admin/list_users.sql
\set ON_ERROR_STOP on
\set VERBOSITY terse
\set QUIET on
SELECT u.id, u.username, u.email, u.cognito_sub, u.is_active, u.created_at,
       (SELECT count(*) FROM articles a WHERE a.owner_id = u.id) AS articles,
       CASE WHEN u.is_client THEN 'client' ELSE 'user' END AS kind
FROM users u
ORDER BY u.id;
