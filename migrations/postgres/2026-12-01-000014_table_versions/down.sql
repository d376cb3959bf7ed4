DROP TRIGGER users_version ON users;
DROP TRIGGER authors_version ON authors;
DROP FUNCTION bump_table_version();
DROP TABLE table_versions;
