"""The soft-track search's corrections: derivation from the processor outputs, the correctionlib set, its application in processors and to the signal regions (corrections/softtrack/README.md)."""
