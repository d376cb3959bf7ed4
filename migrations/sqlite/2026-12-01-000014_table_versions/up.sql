-- In-memory caches of GET /authors pages and GET /users/me (src/service/cache.rs) must notice
-- every change to these tables, whoever makes it: this instance, another instance, or the CLI
-- in another process. Triggers count the changes in one row per table; a cache entry is valid
-- only while the count it was built at is still current.
CREATE TABLE table_versions (
    name    TEXT   NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO table_versions (name, version) VALUES ('authors', 0), ('users', 0);
CREATE TRIGGER authors_version_insert AFTER INSERT ON authors
BEGIN
    UPDATE table_versions SET version = version + 1 WHERE name = 'authors';
END;
CREATE TRIGGER authors_version_update AFTER UPDATE ON authors
BEGIN
    UPDATE table_versions SET version = version + 1 WHERE name = 'authors';
END;
CREATE TRIGGER authors_version_delete AFTER DELETE ON authors
BEGIN
    UPDATE table_versions SET version = version + 1 WHERE name = 'authors';
END;
CREATE TRIGGER users_version_insert AFTER INSERT ON users
BEGIN
    UPDATE table_versions SET version = version + 1 WHERE name = 'users';
END;
CREATE TRIGGER users_version_update AFTER UPDATE ON users
BEGIN
    UPDATE table_versions SET version = version + 1 WHERE name = 'users';
END;
-- A deleted user's authors lose their creator (ON DELETE SET NULL): authors change too, and this
-- does not rely on the foreign key's action firing the authors triggers.
CREATE TRIGGER users_version_delete AFTER DELETE ON users
BEGIN
    UPDATE table_versions SET version = version + 1 WHERE name IN ('users', 'authors');
END;
