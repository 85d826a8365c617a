"""Teacher patch tokens computed once per (dataset, plans, teacher, grid, view) and reused."""
