-- The worker edits and deletes articles for their owners (and the admin group): it may change
-- an article's name and delete articles; owner_id and the times stay as they are.
GRANT UPDATE (name), DELETE ON articles TO articles_app;
