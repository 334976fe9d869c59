-- Runs once, when the postgres service initialises an empty data volume: the vidpipe catalog
-- gets its own database beside Airflow's metadata database, owned by the same user.
CREATE DATABASE vidpipe OWNER airflow;
