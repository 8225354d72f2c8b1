"""The cost model: plain functions over numbers (numpy arrays or scalars); no Hydra, Polars, FastAPI."""
