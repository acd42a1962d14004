"""The running system: CLI, settings, Dash app factory, callbacks and the live monitor."""
