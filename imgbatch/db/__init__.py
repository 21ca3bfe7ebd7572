"""Database: models, engines, migrations and the queries the service runs."""
