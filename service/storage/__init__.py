"""Database connections of the service: the request pool and engines for maintenance work."""
