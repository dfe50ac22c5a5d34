"""The benchmark harness: the grid and its measurement, results files, the machine's metadata and peak."""
