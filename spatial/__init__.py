"""Pure, vectorised geometry and rules: no I/O, no Dash, no SQL."""
