"""HTTP endpoints besides GraphQL: the Hasura webhook, re-runs, Prometheus metrics, the web client."""
