-- GET /authors answers the total with every page. COUNT(*) reads the whole table; triggers keep
-- the number in one row instead, whoever writes.
CREATE TABLE row_counts (
    name  TEXT   NOT NULL PRIMARY KEY,
    count BIGINT NOT NULL
);
INSERT INTO row_counts (name, count) SELECT 'authors', COUNT(*) FROM authors;
CREATE FUNCTION authors_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE row_counts SET count = count + 1 WHERE name = 'authors';
    ELSE
        UPDATE row_counts SET count = count - 1 WHERE name = 'authors';
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER authors_count AFTER INSERT OR DELETE ON authors FOR EACH ROW EXECUTE FUNCTION authors_count();
