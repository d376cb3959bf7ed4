DROP INDEX users_shown_skeleton_key;
DROP INDEX users_name_skeleton_key;
ALTER TABLE users DROP COLUMN shown_skeleton;
ALTER TABLE users DROP COLUMN name_skeleton;
