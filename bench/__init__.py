"""Benchmarks of the product beside the Node.js yardstick (``make bench``)."""
