"""Plans and arguments as SQL, for PostgreSQL and SQLite (one dialect object where they differ)."""
