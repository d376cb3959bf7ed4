DROP TRIGGER authors_count ON authors;
DROP FUNCTION authors_count();
DROP TABLE row_counts;
