"""Behavioural rules (MV106-MV109): what the probe data and the leak oracle show."""
