"""The screen's browser side (CSS, the clientside functions dash-leaflet calls, icons).

A package only so that its files ship as package data in the wheel (pyproject.toml lists
their kinds): `ASSETS_DIR` is where they are, in a checkout, an editable install or an
installed wheel alike. Dash serves the folder; nothing here is Python beyond this file.
"""

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent
