-- Workers cache the users their tokens map to. Every change to users (an administrator's
-- deactivation, a deletion, a binding) notifies the channel the workers listen on, so each
-- worker thread drops its cache before its next request: psql changes take effect at once.
CREATE FUNCTION users_notify_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('articles_users_changed', '');
  RETURN NULL;
END
$$;

CREATE TRIGGER users_notify_change
  AFTER UPDATE OR DELETE OR TRUNCATE ON users
  FOR EACH STATEMENT EXECUTE FUNCTION users_notify_change();
