"""The catalog: Hasura metadata joined with the tables, role permissions, scalars, computed fields."""
