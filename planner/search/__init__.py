"""The planner: instance types (instances.py), the integer program over their counts (ilp.py), and plans (plan.py)."""
