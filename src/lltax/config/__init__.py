"""Configuration: the schema and its validation (``schema``), lltax's own checks (``checks``),
the grid's cells and paths (``grid``), your own model and dataset builders (``builders``)."""
