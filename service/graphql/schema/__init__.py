"""The GraphQL schema per role: types and root fields for queries, subscriptions and mutations."""
