"""The catalog: tables, the database component, migrations and the queries the daemon runs."""
