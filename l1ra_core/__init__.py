"""l1ra_core."""
