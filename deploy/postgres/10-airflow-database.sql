-- Runs once, when the PostgreSQL volume is first initialised: Airflow's metadata database lives
-- beside the app's (same server, its own database).
CREATE DATABASE airflow;
