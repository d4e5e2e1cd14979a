"""Tables of the accounts service (SQLAlchemy typed models); the one place its schema is described."""

from plumbing.db import make_base

Base = make_base()
