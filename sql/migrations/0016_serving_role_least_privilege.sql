-- The serving role (articles_app) may change of users and of the replay records only what its
-- statements need.
--
-- Users: it inserts the rows it creates (first use with AUTO_PROVISION_USERS, provisioning) with
-- their username, email, sub and pool only, so never a machine client (create_client.sql) or an
-- inactive row; it renames (provisioning); it binds a row whose sub is still empty, in the pool
-- the row waits for (create_user.sql, pool_id), and never rebinds one: a bound row's sub, and
-- any row's pool, are the administrator's to change.
REVOKE INSERT, UPDATE ON users FROM articles_app;
GRANT INSERT (username, email, cognito_sub, pool_id), UPDATE (username, email, cognito_sub) ON users TO articles_app;

CREATE FUNCTION users_bind_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- Whoever may act as the table's owner (migrations, the admin scripts, a superuser) may.
  IF NOT pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'USAGE') THEN
    RAISE EXCEPTION 'user % is bound to a Cognito account already; only an administrator may bind it to another', OLD.id
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER users_bind_once BEFORE UPDATE OF cognito_sub ON users FOR EACH ROW
  WHEN (OLD.cognito_sub IS NOT NULL AND NEW.cognito_sub IS DISTINCT FROM OLD.cognito_sub)
  EXECUTE FUNCTION users_bind_once();

-- Replay records: a signed provisioning request is remembered, whether or not it is then
-- accepted, through the one function that also forgets the signatures too old to be accepted
-- again (5 minutes either way, and as long again for hosts whose clocks differ). The serving
-- role neither deletes nor changes a record itself.
REVOKE ALL ON provisioning_requests FROM articles_app;
CREATE FUNCTION remember_provisioning_request(signature bytea, signed_at timestamptz) RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path FROM CURRENT AS $$
  DELETE FROM provisioning_requests WHERE provisioning_requests.signed_at < now() - interval '10 minutes';
  INSERT INTO provisioning_requests (signature, signed_at) VALUES ($1, $2)
  ON CONFLICT DO NOTHING RETURNING true;
$$;
REVOKE ALL ON FUNCTION remember_provisioning_request(bytea, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION remember_provisioning_request(bytea, timestamptz) TO articles_app;
