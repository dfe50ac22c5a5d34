"""``python -m pgdbench.cli``: how MPI jobs started by pgdbench run the command line on every rank."""
import sys

from pgdbench.cli import main

sys.exit(main())
