"""The traffic simulator behind `hazmap simulate` and `hazmap demo`.

settings.py  SimSettings and the staged-behaviour contract (STAGED_COLUMNS)
fleet.py     plan_fleet: the demo fleet along its waybill routes, staged violations
points.py    plan_points: monitoring-point readings, staged alarms and faults
senders.py   Jt808Sender (TCP to the gateway), MqttReadingSender (to the broker)
runner.py    Simulator: the clock that hands slices of simulated time to the senders
"""
