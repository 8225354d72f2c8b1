"""The sweep engine: grid expansion, parallel evaluation, Parquet I/O, Pareto, summaries."""
