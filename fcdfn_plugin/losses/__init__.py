"""Registered losses of the FCDFN plugin (filled in by later modules)."""
