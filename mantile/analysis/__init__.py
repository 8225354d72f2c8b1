"""What to do with a results table: Pareto fronts, SLA ranking, capacity studies, plots, summaries."""
