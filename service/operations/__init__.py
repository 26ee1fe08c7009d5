"""What the command line and background tasks do: demo, retention, export, replay, rollup, scaffolding."""
