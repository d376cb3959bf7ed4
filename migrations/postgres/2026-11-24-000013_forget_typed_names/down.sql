-- The forgotten counters cannot come back (and need not: they start over after an hour).
SELECT 1;
