"""The one settings object: defaults <- optional hazmap.toml <- HAZMAP_* environment.

Created once by the CLI and passed down; no other module reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

DEFAULT_VAR_DIR = Path("var")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HAZMAP_", toml_file="hazmap.toml", extra="forbid")

    var_dir: Path = Field(DEFAULT_VAR_DIR, description="working files: the embedded database, exports, caches")
    database_url: str = Field(
        "",
        description="SQLAlchemy URL; postgresql+psycopg://… for PostGIS, empty for the embedded SQLite file "
        "var_dir/hazmap.sqlite",
    )
    host: str = Field("127.0.0.1", description="address the web app listens on")
    port: int = Field(8050, description="port of the web app")
    # the basemap (layers/display_crs.py); whatever it is, the land, district outlines and coast are drawn
    basemap: Literal["none", "osm", "tianditu", "custom"] = Field(
        "none",
        description="basemap preset: 'none' (offline: no tile request at all; the land, district outlines and "
        "coast still orient), 'osm' (OpenStreetMap), 'tianditu' (the national basemap, CGCS2000; needs "
        "tianditu_key), 'custom' (tile_url; setting tile_url alone selects it)",
    )
    tile_url: str = Field(
        "", description="the custom basemap's tile URL with {z}, {x}, {y} (and {s} for subdomains a, b, c), e.g. "
        "an internal tile server"
    )
    tile_crs: Literal["wgs84", "gcj02"] = Field(
        "wgs84", description="datum of the custom tiles: 'gcj02' for Chinese services such as AutoNavi (Amap); "
        "every overlay and click is then drawn shifted WGS-84 -> GCJ-02 to match (OSM and Tianditu are WGS-84)"
    )
    tile_attribution: str = Field("", description="attribution of the custom basemap (the presets bring their own)")
    tianditu_key: str = Field("", description="Tianditu API key (tk), needed by basemap = tianditu")
    world_seed: int = Field(20211, description="seed of the demo world")
    world_scale: float = Field(1.0, description="fraction of Ningbo's real counts in the demo world")
    language: str = Field("zh", description="screen language: zh or en")
    wall_alarm_sound: bool = Field(True, description="a new red incident sounds on the wall (false for kiosks; "
                                                     "officers can also mute it on the screen)")
    jt808_in_serve: bool = Field(True, description="run the JT/T 808 gateway inside `hazmap serve` / `hazmap demo`")
    jt808_host: str = Field("127.0.0.1", description="JT/T 808 gateway listen address (0.0.0.0 for terminals on the network)")
    jt808_port: int = Field(7808, description="JT/T 808 gateway TCP port")
    jt808_stats_port: int = Field(7809, description="port of the gateway's feed-health JSON (GET /stats)")
    jt808_auth_secret: str = Field(
        "", description="secret the terminals' auth codes derive from; empty: a new one per start (terminals re-register)"
    )

    mqtt_url: str = Field("mqtt://127.0.0.1:1883", description="MQTT broker the monitoring points publish to")
    mqtt_in_serve: bool = Field(True, description="subscribe to the points' readings inside `hazmap serve` / `demo`")
    live_clock: Literal["feed", "wall"] = Field(
        "feed",
        description="what moves the rules' clock: 'feed' (the newest report; simulations and replays) or 'wall' "
        "(real terminals: reports from the future are dropped, silent sensors are noticed without any data)",
    )
    trail_s: float = Field(7200.0, gt=0, description="seconds of track the screen keeps per truck")
    risk_weights: dict[str, Any] = Field(
        default_factory=dict,
        description="overrides of the risk grid's weights and band cut points (spatial.risk.RiskWeights, "
        "docs/risk.md), e.g. HAZMAP_RISK_WEIGHTS='{\"exposure_pts\": 2.0, \"band_cuts\": [20, 50, 100]}'",
    )
    point_symbols_min_zoom: float = Field(
        12.0, ge=0, le=22,
        description="map zoom from which the point layers (entities, monitoring points, sensitive sites, trucks) "
        "show their symbols; below it, counts per H3 cell (engineering default: at zoom 12 a pixel is ~33 m, "
        "the city's points can be told apart)")
    briefing_attention: dict[str, Any] = Field(
        default_factory=dict,
        description="overrides of the daily briefing's attention thresholds (spatial.briefing.AttentionSettings, "
        "docs/reports.md), e.g. HAZMAP_BRIEFING_ATTENTION='{\"key_red_min\": 2, \"window_days\": 7}'",
    )
    briefing_hour: int | None = Field(
        7, ge=0, le=23, description="`hazmap serve` / `demo` write the previous day's briefing at this local hour "
        "(Asia/Shanghai) into var_dir/briefings; empty: never")
    sim_in_demo: bool = Field(True, description="`hazmap demo` runs the traffic simulator")
    sim_time_factor: float = Field(10.0, gt=0, description="simulated seconds per wall-clock second (demo, simulate)")
    sim_seed: int = Field(1, description="seed of the simulated traffic and sensor readings")
    sim_start: str = Field(
        "", description="simulated start, ISO 8601 with offset; empty: 06:00 (Asia/Shanghai) on the demo world's day"
    )
    sim_hours: float = Field(18.0, gt=0, description="simulated hours")
    sim_stage_share: float = Field(
        0.01, ge=0, le=0.1, description="share of trucks (and of points) staged for each kind of violation"
    )
    # incidents (spatial/incidents/lifecycle.py IncidentSettings; engineering defaults, docs/incidents.md)
    incident_sign_deadlines_s: list[float] = Field(
        [900.0, 1800.0, 7200.0, 86400.0], min_length=4, max_length=4,
        description="seconds to sign for an incident, per level: red, orange, yellow, blue; past it: escalated")
    incident_reopen_window_s: float = Field(600.0, ge=0, description="an episode reopening this soon joins its incident")
    incident_quick_close_s: float = Field(300.0, ge=0, description="rule closes this soon, unsigned: counted as noise")
    incident_escalate_every_s: float = Field(60.0, gt=0, description="monitor: overdue check every N s of its clock")
    # serving (app/server.py, app/ops.py, docs/deploy.md)
    http_threads: int = Field(8, ge=1, le=256, description="web server threads: requests answered at once")
    http_connection_limit: int = Field(
        200, ge=1, description="web connections open at once; more wait in the listen backlog"
    )
    http_channel_timeout_s: float = Field(
        120.0, gt=0, description="a web connection that sends or reads nothing for this long is closed"
    )
    trusted_proxy: str = Field(
        "", description="address of the reverse proxy whose X-Forwarded-* headers are believed (127.0.0.1 "
        "behind a local nginx); empty: none"
    )
    log_format: Literal["text", "json"] = Field("text", description="log lines as text or as one JSON object each")
    log_requests: bool = Field(False, description="log one line per HTTP request (method, path, status, time)")
    ready_feed_max_silence_s: float = Field(
        300.0, ge=0, description="/api/ready fails when no report or reading arrived for this long while a feed "
        "is configured; 0: never (a deliberately idle feed)"
    )
    # people (app/auth.py, data/people.py, docs/api.md)
    auth_required: bool = Field(
        True, description="the screen needs a login (false: it is open as a read-only kiosk; the API always "
        "needs a token)")
    session_ttl_s: float = Field(43200.0, gt=0, description="a screen login lasts this long (a kiosk's never ends)")
    api_token_ttl_s: float = Field(3600.0, gt=0, le=30 * 86400,
                                   description="an API token from POST /api/token expires after this long "
                                   "(a kiosk's never)")
    # deliveries (data/channels/, docs/channels.md; engineering defaults)
    channels_in_serve: bool = Field(True, description="run the delivery sender inside `hazmap serve` / `demo`")
    delivery_max_attempts: int = Field(6, ge=1, description="attempts of one delivery before it is dead-lettered")
    delivery_backoff_s: float = Field(2.0, gt=0, description="first retry after this; doubled each time, with jitter")
    delivery_backoff_max_s: float = Field(300.0, gt=0, description="longest wait between two attempts")
    webhook_timeout_s: float = Field(10.0, gt=0, description="one webhook / SMS gateway attempt gives up after this")
    driver_text_levels: list[int] = Field(
        [1, 2], description="incident severities texted to the truck's terminal (JT/T 808 0x8300): 1 red, 2 orange")
    driver_text_ttl_s: float = Field(
        3600.0, gt=0, description="a message to a terminal that has not connected within this long fails")
    demo_receiver: bool = Field(True, description="`hazmap demo` starts a local webhook receiver subscribed to red "
                                "and orange incidents")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @model_validator(mode="after")
    def _check_basemap(self) -> "Settings":
        if self.tile_url and self.basemap == "none":
            self.basemap = "custom"  # a tile URL alone means: these tiles
        if self.basemap == "custom" and not self.tile_url:
            raise ValueError("basemap = custom needs tile_url (HAZMAP_TILE_URL)")
        if self.basemap != "custom" and self.tile_url:
            raise ValueError(f"tile_url is only for basemap = custom, not with basemap = {self.basemap}")
        if self.tile_url and not all(part in self.tile_url for part in ("{z}", "{x}", "{y}")):
            raise ValueError(f"tile_url must hold {{z}}, {{x}} and {{y}}, got {self.tile_url!r}")
        if self.basemap == "tianditu" and not self.tianditu_key:
            raise ValueError("basemap = tianditu needs tianditu_key (HAZMAP_TIANDITU_KEY)")
        if self.tile_crs != "wgs84" and self.basemap != "custom":
            raise ValueError(f"tile_crs = {self.tile_crs} is for basemap = custom; {self.basemap} tiles are WGS-84")
        return self

    def basemap_layers(self, language: str = "zh") -> list[dict]:
        """The tile layers of the basemap (layers/display_crs.py tile_layers), none when offline."""
        from layers.display_crs import tile_layers

        return tile_layers(self.basemap, self.tile_url, self.tile_attribution, self.tianditu_key, language)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'hazmap.sqlite').as_posix()}"
