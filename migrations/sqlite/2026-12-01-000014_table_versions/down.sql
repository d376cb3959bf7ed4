DROP TRIGGER users_version_delete;
DROP TRIGGER users_version_update;
DROP TRIGGER users_version_insert;
DROP TRIGGER authors_version_delete;
DROP TRIGGER authors_version_update;
DROP TRIGGER authors_version_insert;
DROP TABLE table_versions;
