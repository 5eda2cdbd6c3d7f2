"""The soft-track higgsino search: its configuration, selections and observables."""
