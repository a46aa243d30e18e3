-- The worker creates and updates users itself when Cognito's Post Confirmation trigger calls
-- its provisioning endpoint (PROVISIONING_SECRET): new rows, and a user's name and email as
-- Cognito has them.
GRANT INSERT, UPDATE (username, email) ON users TO articles_app;
