-- Look-alike names (issue 13). A name is unique by its lookup key (name_key: the PRECIS
-- UsernameCaseMapped form, RFC 8265) and by two Unicode TS #39 confusable skeletons: of that key
-- (name_skeleton) and of the name as shown, case kept (shown_skeleton). The application computes
-- all three. Users stored before this migration get theirs from the start-up backfill
-- (service::users::backfill_names); the skeletons stay NULL for names the profile refuses or
-- that look like another user's, and such users keep logging in as before. New users always
-- have both skeletons. NULLs never collide in a unique index, on either backend.
ALTER TABLE users ADD COLUMN name_skeleton TEXT;
ALTER TABLE users ADD COLUMN shown_skeleton TEXT;
CREATE UNIQUE INDEX users_name_skeleton_key ON users (name_skeleton);
CREATE UNIQUE INDEX users_shown_skeleton_key ON users (shown_skeleton);
