-- Workers keep the article pages and articles they answered with, per thread. Every change to
-- articles (through the API, psql, or another worker) notifies the channel the workers
-- listen on, so each worker drops what it kept before its next request.
CREATE FUNCTION articles_notify_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('articles_changed', '');
  RETURN NULL;
END
$$;

CREATE TRIGGER articles_notify_change
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON articles
  FOR EACH STATEMENT EXECUTE FUNCTION articles_notify_change();
