"""Serving the engine: Strawberry's HTTP view, both WebSocket protocols, and the seam with Strawberry."""
