-- Lists every article with its owner's username.
--
--   psql "$ADMIN_URL" -f sql/admin/list_articles.sql
\set ON_ERROR_STOP on
\set VERBOSITY terse
\set QUIET on
SELECT a.id, a.name, u.username AS owner, a.created_at, a.updated_at
FROM articles a JOIN users u ON u.id = a.owner_id
ORDER BY a.id;
