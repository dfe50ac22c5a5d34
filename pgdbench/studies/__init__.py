"""The source papers' studies beyond the main grid: the DBN over MPI, replica averaging, MPI scaling."""
