-- Users of the API. An administrator creates each one (sql/admin/create_user.sql); the first
-- valid Cognito token with the same email binds the row to the token's `sub`.
CREATE TABLE users (
  id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  username    text        NOT NULL CONSTRAINT users_username_key UNIQUE,
  email       text        NOT NULL,
  cognito_sub text        CONSTRAINT users_cognito_sub_key UNIQUE,
  is_active   boolean     NOT NULL DEFAULT true,
  created_at  timestamptz NOT NULL DEFAULT now(),
  -- Cognito user names are 1 to 128 characters.
  CONSTRAINT users_username_check CHECK (char_length(username) BETWEEN 1 AND 128),
  CONSTRAINT users_email_check CHECK (email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
  CONSTRAINT users_cognito_sub_check CHECK (cognito_sub <> '')
);

-- Email addresses are unique whatever their case, as Cognito compares them.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
