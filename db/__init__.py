"""Data layer: typed SQLAlchemy models, engine/session, repositories, Alembic migrations."""
