"""One module per map layer: World/LiveState -> dash-leaflet components and payloads."""
