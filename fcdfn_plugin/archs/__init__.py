"""Registered archs of the FCDFN plugin (filled in by later modules)."""
