-- Machine clients (Cognito's client-credentials grant: an access token whose sub is its app
-- client's id, with no username) are principals beside users, registered with
-- sql/admin/create_client.sql: a row of users whose cognito_sub is the client id, named like a
-- user (the name unique among both), with no email; the admin scripts that take a username
-- deactivate, reactivate, revoke and delete them too.
ALTER TABLE users ADD COLUMN is_client boolean NOT NULL DEFAULT false;
ALTER TABLE users ADD CONSTRAINT users_client_check CHECK (NOT is_client OR (email IS NULL AND cognito_sub IS NOT NULL));
