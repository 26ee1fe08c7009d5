"""The event-detector service: a Hasura-compatible GraphQL API over what the plugin records,
the web console, the webhook and the command line.

Its parts, lowest layer first (each may import only its own layer and those before it;
`tests/test_layering.py` checks this, docs/architecture.md explains it):

- `assets`: where the files the service reads live (a wheel's copies, or the checkout);
- `settings`: the one `Settings` object of a process;
- `graphql/`: the GraphQL engine, which stands alone (catalog → schema → plan → SQL →
  execution → transport);
- `storage/`: database connections: the request pool (`database`) and engines for
  maintenance work (`maintenance`);
- `live/`: live queries: subscriptions re-run on change, shared per cohort;
- `operations/`: what the command line and background tasks do: demo data, retention,
  export, replay, the periodic rollup, events-directory inventory and scaffolding;
- `endpoints/`: HTTP endpoints besides GraphQL: webhook, re-runs, metrics, web client,
  GraphiQL; the pages' headers and CORS;
- `app`: the composition root that assembles all of it into an ASGI app (`create_app`, or
  the API alone: `create_graphql_app`), mountable under any prefix;
- `cli/`: the `event-detector` command.
"""
