-- Articles, as the tutorial's Article model: a name of 1 to 50 characters (code points, so
-- PostgreSQL and the worker count alike), owned by a user.
CREATE TABLE articles (
  id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name       text        NOT NULL CONSTRAINT articles_name_length CHECK (char_length(name) BETWEEN 1 AND 50),
  owner_id   bigint      NOT NULL CONSTRAINT articles_owner_id_fkey REFERENCES users (id),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX articles_owner_id_idx ON articles (owner_id);

-- updated_at follows every change, including those made by hand with psql.
CREATE FUNCTION articles_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END
$$;

CREATE TRIGGER articles_touch_updated_at
  BEFORE UPDATE ON articles
  FOR EACH ROW EXECUTE FUNCTION articles_touch_updated_at();
