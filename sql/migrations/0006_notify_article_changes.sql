-- Workers keep the article pages and articles they answered with, per thread. Every change to
-- articles (through the API, psql, or another worker) notifies the channel the workers
-- listen on, so each worker drops what it kept before its next request.
--
-- notify_channel() notifies the channel its trigger names (the trigger's first argument).
CREATE FUNCTION notify_channel() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify(TG_ARGV[0], '');
  RETURN NULL;
END
$$;

CREATE TRIGGER articles_notify_change
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON articles
  FOR EACH STATEMENT EXECUTE FUNCTION notify_channel('articles_changed');
