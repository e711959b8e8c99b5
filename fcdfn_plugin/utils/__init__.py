"""Helpers shared by the model and the tools."""
