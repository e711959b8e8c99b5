"""Registered models of the FCDFN plugin (filled in by later modules)."""
