"""Torch twins of the model families, one module each (see dl2424/gradcheck/torch_ref.py).

Every module in this package is imported when a check against torch runs.
"""
