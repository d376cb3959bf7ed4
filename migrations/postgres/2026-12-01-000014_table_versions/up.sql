-- In-memory caches of GET /authors pages and GET /users/me (src/service/cache.rs) must notice
-- every change to these tables, whoever makes it: this instance or another one. Statement-level
-- triggers count the changes in one row per table (once per statement, however many rows it
-- touched); each instance polls the row and drops cache entries built at an older count.
CREATE TABLE table_versions (
    name    TEXT   NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO table_versions (name, version) VALUES ('authors', 0), ('users', 0);
CREATE FUNCTION bump_table_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE table_versions SET version = version + 1 WHERE name = TG_TABLE_NAME;
    -- A deleted user's authors lose their creator (ON DELETE SET NULL): authors change too.
    IF TG_TABLE_NAME = 'users' AND TG_OP = 'DELETE' THEN
        UPDATE table_versions SET version = version + 1 WHERE name = 'authors';
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER authors_version AFTER INSERT OR UPDATE OR DELETE ON authors
    FOR EACH STATEMENT EXECUTE FUNCTION bump_table_version();
CREATE TRIGGER users_version AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION bump_table_version();
