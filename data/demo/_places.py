"""Where things are in Ningbo: town centres, chemical parks, reservoirs, expressway corridors.

Approximate WGS-84 positions (to a few hundred metres) from general knowledge of the city;
the generator snaps them to land or to the road network, so small errors do not matter.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Town:
    name: str  # Chinese name, used in generated names
    lon: float
    lat: float
    weight: float  # share of people and activity (relative)
    spread_m: float  # standard deviation of the built-up area around the centre
    seat: bool = False  # district / county seat


# District seats first (central districts weigh most), then market towns.
TOWNS: tuple[Town, ...] = (
    Town("海曙", 121.545, 29.872, 10.0, 2800, True),
    Town("江北", 121.560, 29.895, 6.0, 2500, True),
    Town("鄞州", 121.550, 29.815, 10.0, 3200, True),
    Town("镇海", 121.716, 29.949, 3.5, 2000, True),
    Town("北仑", 121.844, 29.900, 5.0, 2500, True),
    Town("奉化", 121.406, 29.656, 3.0, 2000, True),
    Town("余姚", 121.155, 30.037, 4.5, 2500, True),
    Town("慈溪", 121.266, 30.170, 5.0, 2600, True),
    Town("宁海", 121.430, 29.290, 2.5, 1800, True),
    Town("象山", 121.869, 29.476, 2.0, 1600, True),
    Town("高桥", 121.480, 29.890, 1.2, 1200),
    Town("集士港", 121.455, 29.860, 1.0, 1100),
    Town("慈城", 121.450, 29.970, 0.8, 1000),
    Town("姜山", 121.540, 29.730, 1.0, 1100),
    Town("五乡", 121.690, 29.840, 0.8, 1000),
    Town("骆驼", 121.630, 29.960, 0.9, 1000),
    Town("大碶", 121.790, 29.880, 1.2, 1200),
    Town("柴桥", 121.910, 29.880, 0.8, 1000),
    Town("溪口", 121.240, 29.670, 0.7, 900),
    Town("周巷", 121.150, 30.170, 1.0, 1100),
    Town("观海卫", 121.420, 30.150, 1.0, 1100),
    Town("泗门", 121.050, 30.180, 0.8, 1000),
    Town("西店", 121.500, 29.470, 0.6, 900),
    Town("石浦", 121.950, 29.200, 0.7, 900),
    Town("杭州湾", 121.270, 30.310, 0.9, 1400),
    Town("梅山", 121.960, 29.790, 0.5, 900),
    Town("长街", 121.660, 29.210, 0.5, 900),
)


@dataclass(frozen=True)
class ParkSite:
    name: str
    name_en: str
    lon: float
    lat: float
    radius_m: float  # mean radius of the generated outline
    elongation: float  # major / minor axis
    bearing_deg: float  # direction of the major axis, clockwise from north
    weight: float  # share of the licensed enterprises located in parks


CHEMICAL_PARKS: tuple[ParkSite, ...] = (
    ParkSite("宁波石化经济技术开发区", "Ningbo Petrochemical Economic & Technological Development Zone",
             121.660, 29.990, 3800, 1.8, 60, 0.34),
    ParkSite("宁波北仑港口化工区", "Beilun Port Chemical Industrial Zone", 121.820, 29.930, 2800, 1.6, 80, 0.22),
    ParkSite("宁波大榭开发区化工区", "Daxie Island Development Zone Chemical Area", 121.960, 29.930, 2200, 1.3, 60, 0.16),
    ParkSite("宁波杭州湾新区精细化工园区", "Hangzhou Bay New Zone Fine Chemical Park", 121.270, 30.320, 2600, 1.7, 95, 0.14),
    ParkSite("余姚化工园区", "Yuyao Chemical Industrial Park", 121.130, 30.100, 1800, 1.4, 120, 0.08),
    ParkSite("宁海经济开发区化工集聚区", "Ninghai Economic Development Zone Chemical Cluster", 121.470, 29.340, 1100, 1.3, 30, 0.04),
    ParkSite("象山经济开发区化工集聚区", "Xiangshan Economic Development Zone Chemical Cluster", 121.830, 29.510, 900, 1.2, 45, 0.02),
)


@dataclass(frozen=True)
class Reservoir:
    name: str
    lon: float
    lat: float
    radius_m: float  # mean radius of the first-class protection zone
    elongation: float
    bearing_deg: float


# The city's drinking-water reservoirs (their first-class source protection zones).
RESERVOIRS: tuple[Reservoir, ...] = (
    Reservoir("横山水库", 121.330, 29.560, 2200, 1.8, 20),
    Reservoir("皎口水库", 121.330, 29.780, 2000, 2.0, 110),
    Reservoir("周公宅水库", 121.220, 29.750, 2300, 2.2, 60),
    Reservoir("亭下水库", 121.210, 29.660, 1900, 1.8, 140),
    Reservoir("白溪水库", 121.310, 29.240, 2400, 2.0, 70),
)

# Expressways: name and the waypoints (lon, lat) the line goes through in order; the road
# follows the network's quickest path between successive waypoints.
EXPRESSWAYS: tuple[tuple[str, tuple[tuple[float, float], ...]], ...] = (
    ("G15沈海高速", ((121.180, 30.320), (121.250, 30.160), (121.430, 29.960), (121.480, 29.900),
                     (121.520, 29.740), (121.420, 29.640), (121.420, 29.420), (121.430, 29.300),
                     (121.450, 29.090))),
    ("G92杭州湾环线高速", ((120.900, 30.030), (121.160, 30.040), (121.380, 29.960), (121.470, 29.960),
                         (121.640, 29.960), (121.800, 29.930), (121.870, 29.930))),
    ("G1501宁波绕城高速", ((121.470, 29.960), (121.640, 29.960), (121.700, 29.870), (121.630, 29.770),
                          (121.500, 29.760), (121.420, 29.850), (121.470, 29.960))),
    ("S20穿山疏港高速", ((121.700, 29.870), (121.840, 29.890), (121.990, 29.880))),
    ("大榭疏港高速", ((121.870, 29.930), (121.960, 29.930))),
    ("G1523甬莞高速", ((121.430, 29.300), (121.600, 29.380), (121.869, 29.476))),
    ("杭州湾新区疏港高速", ((121.270, 30.320), (121.250, 30.160))),
)

# The city core closed to hazmat trucks at rush hours (三江口, where the Yao, Fenghua and
# Yong rivers meet).
CITY_CORE = ("三江口核心区", 121.555, 29.875, 2600.0)
# A long tunnel closed to dangerous goods (placed on the network near this point).
TUNNEL = ("金峨隧道", 121.660, 29.700)
