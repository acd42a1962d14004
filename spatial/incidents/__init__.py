"""Incidents: rule events -> incidents -> recipients who sign, dispose and close (pure).

levels.py (severity -> warning level: names and colours in one place), lifecycle.py (events to
incidents, the noise window, the recipient state machine, deadlines and escalation decisions),
routing.py (who must act), kpis.py (handling figures). No I/O: data/incidents.py persists.
"""
