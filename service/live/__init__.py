"""Live subscriptions: identical subscriptions share one execution, re-run on change.

- `queries`: `LiveQueries`, the GraphQL engine's subscription hook (cohorts, scheduling,
  streams);
- `cohorts`: cohort keys, shared results, subscribers with a latest-wins slot;
- `changes`: change sources (SQLite `data_version` watcher, PostgreSQL `LISTEN`);
- `collector`: their Prometheus families, read at scrape time.
"""

from service.live.queries import LiveQueries, LiveSettings, LiveStats

__all__ = ["LiveQueries", "LiveSettings", "LiveStats"]
