"""Dispatch: trip orders, approval, matching, assignment without double booking."""
