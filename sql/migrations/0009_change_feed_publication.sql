-- The workers follow changes to the tables they cache through logical decoding of the WAL
-- (the built-in pgoutput plugin reading this publication from a temporary replication slot),
-- instead of the notifications of migrations 0005, 0006 and 0008: a transaction that notifies
-- holds a database-wide lock through its commit, so notifying writers could not share a WAL
-- flush. Decoding costs writers nothing at commit, and sees psql's changes as well.
DROP TRIGGER users_notify_change ON users;
DROP FUNCTION users_notify_change();
DROP TRIGGER articles_notify_change ON articles;
DROP TRIGGER revoked_sessions_notify_change ON revoked_sessions;
DROP FUNCTION notify_channel();

CREATE PUBLICATION articles_fcgi FOR TABLE users, articles, revoked_sessions;

-- Streaming a slot needs the REPLICATION attribute and the server wal_level = logical
-- (`articles-fcgi check-config` says what is missing). This migration first gave the attribute
-- to articles_app, the serving role; 0011 gives it to a role of the feed's own instead and takes
-- it from articles_app, and this one no longer gives it (between the two, another database's
-- migration would give the cluster-wide role the attribute back).
