"""Running an operation: the engine, request context, authentication, limits, resolvers."""
