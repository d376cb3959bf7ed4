DROP TRIGGER authors_count_delete;
DROP TRIGGER authors_count_insert;
DROP TABLE row_counts;
