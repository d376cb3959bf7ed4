DROP TABLE ssf_events;
DROP TABLE ssf_streams;
