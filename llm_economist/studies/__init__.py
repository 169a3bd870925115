"""Studies built on the simulation: comparisons over seeds, the behavioural probe, the transfer
test, sweeps and welfare sensitivity. Nothing below this package imports it."""
