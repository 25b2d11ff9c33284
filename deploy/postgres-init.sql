-- Runs once, when the PostgreSQL volume is created: Synapse gets the `synapse` database
-- (POSTGRES_DB, created with C collation as Synapse requires), the bridge its own.
CREATE DATABASE bridge OWNER matrix;
