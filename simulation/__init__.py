"""A whole consortium on one machine: the breast-ultrasound phantom, simulated hospitals and their
PACS exports, the local consortium launcher, and the demo with its report.

This package may use both the site (`client`) and the coordinator (`server`); neither of them,
nor `common`, imports it. It adds `busgen-server demo` and `busgen-site simulate` to the tools
through entry points (see pyproject.toml).
"""
