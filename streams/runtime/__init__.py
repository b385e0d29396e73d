"""The worker's runtime: stages over whole fetches, restore, checkpoints, the wiring."""
