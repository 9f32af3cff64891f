"""Shared numerics of every family: operators (and the torch↔SciPy bridge), probes, probe → interval
rules, recurrences, synthetic spectra, the result base. No neural networks, no Lightning, and no
import of a family wing."""
