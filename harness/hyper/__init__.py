"""HyperAgent mode: the agent rewrites itself between windows of experiments, behind gates and a probation."""
