"""Pure tensor maths of FCDFN (no BasicSR imports)."""
