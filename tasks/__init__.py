"""Thin Prefect tasks: one component call plus its file I/O each."""
