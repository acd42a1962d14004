"""What the side panel says about a clicked feature: pure formatting of World rows.

`FeatureDirectory(world)` indexes every layer by id once; `describe(layer, id, language)`
returns labelled, formatted rows (and the child tables: a hazard source's chemicals, a
waybill's goods), which the app only has to lay out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from layers.catalog import map_layer
from layers.labels import CHILD_TITLES, VALUE_LABELS, VALUE_VOCABULARY, field_label
from layers.style import text
from spatial.model import CHILD_SPECS, LAYER_NAMES, World

SCREEN_TIMEZONE = "Asia/Shanghai"  # times are UTC inside, local on the wall
MISSING = "—"


@dataclass(frozen=True)
class DetailTable:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class FeatureDetails:
    layer: str
    layer_title: str
    feature_id: str
    title: str
    rows: tuple[tuple[str, str], ...]  # (label, value)
    tables: tuple[DetailTable, ...]


def _is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, (list, tuple, np.ndarray)):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def format_value(value, kind: str, language: str, vocabulary: str | None = None) -> str:
    """One field value as the wall shows it."""
    if _is_missing(value):
        return MISSING
    if vocabulary is not None:
        key = str(int(value)) if kind == "int" else str(value)
        label = VALUE_LABELS[vocabulary].get(key)
        return text(label, language) if label else key
    if kind == "bool":
        return text(VALUE_LABELS["bool"][str(bool(value))], language)
    if kind == "datetime":
        stamp = pd.Timestamp(value)
        if stamp.tzinfo is None:  # times are UTC inside
            stamp = stamp.tz_localize("UTC")
        return stamp.tz_convert(SCREEN_TIMEZONE).strftime("%Y-%m-%d %H:%M")
    if kind == "strlist":
        items = [str(v) for v in (value if isinstance(value, (list, tuple, np.ndarray)) else [value])]
        return ("、" if language == "zh" else ", ").join(items) if items else MISSING
    if kind == "float":
        number = float(value)
        return f"{number:,.0f}" if number.is_integer() else f"{number:,.3f}".rstrip("0").rstrip(".")
    if kind == "int":
        return f"{int(value):,}"
    return str(value)


class FeatureDirectory:
    """Every World feature by layer and id, with what the panel needs to describe it."""

    def __init__(self, world: World):
        self._frames = {name: world.table(name).set_index("id", drop=False) for name in LAYER_NAMES}
        self._children = {}
        for name, spec in CHILD_SPECS.items():
            table = world.table(name)
            self._children[name] = (spec, {k: g for k, g in table.groupby(spec.parent_key, sort=False)})
        chemicals = world.chemicals
        if len(chemicals) and "un_number" in chemicals.columns:
            chemicals = chemicals.set_index("un_number")
        self._chemicals = chemicals

    def describe(self, layer: str, feature_id: str, language: str) -> FeatureDetails:
        """Raises LookupError when the layer holds no such id (e.g. a page older than the world)."""
        definition = map_layer(layer)
        frame = self._frames[layer]
        if feature_id not in frame.index:
            raise LookupError(f"{layer} has no feature {feature_id!r}")
        row = frame.loc[feature_id]
        rows = [self._field(layer, f.name, f.kind, row[f.name], language) for f in definition.spec.fields]
        geometry = row.geometry
        if geometry is not None and shapely.get_type_id(geometry) == 0:  # a point: say where it is
            rows.append((field_label("lon_lat", language), f"{geometry.x:.5f}, {geometry.y:.5f}"))
        return FeatureDetails(
            layer=layer,
            layer_title=text(definition.title, language),
            feature_id=feature_id,
            title=self._title(definition.title_column, row, language),
            rows=tuple(rows),
            tables=tuple(self._child_tables(layer, feature_id, language)),
        )

    def title_of(self, layer: str | None, feature_id: str, language: str) -> str | None:
        """What the wall calls a feature (a truck's plate, a plant's name) or None where its layer
        names it by id only or holds no such feature."""
        frame = self._frames.get(layer) if layer else None
        if frame is None or feature_id not in frame.index:
            return None
        title = self._title(map_layer(layer).title_column, frame.loc[feature_id], language)
        return None if title == feature_id or _is_missing(title) else title

    def _title(self, column: str, row: pd.Series, language: str) -> str:
        if language == "en" and column == "name" and not _is_missing(row.get("name_en")):
            return str(row["name_en"])
        return str(row[column])

    def _field(self, layer: str, name: str, kind: str, value, language: str) -> tuple[str, str]:
        label = field_label(name, language)
        reference = map_layer(layer).references.get(name)
        if reference is not None and not _is_missing(value):
            return label, self._reference(reference, str(value), language)
        return label, format_value(value, kind, language, VALUE_VOCABULARY.get((layer, name)))

    def _reference(self, reference: tuple[str, str], key: str, language: str) -> str:
        """A foreign key shown as the target's name with the key beside it."""
        target, key_column = reference
        frame = self._frames[target]
        match = frame.loc[[key]] if key_column == "id" and key in frame.index else frame[frame[key_column] == key]
        if not len(match):
            return key
        title = self._title(map_layer(target).title_column, match.iloc[0], language)
        return title if title == key else f"{title} ({key})"

    def _child_tables(self, layer: str, feature_id: str, language: str) -> list[DetailTable]:
        tables = []
        for name, (spec, groups) in self._children.items():
            if spec.parent != layer:
                continue
            group = groups.get(feature_id)
            if group is None or not len(group):
                continue
            fields = [f for f in spec.fields if f.name != spec.parent_key]
            columns = [field_label(f.name, language) for f in fields]
            values = [[format_value(v, f.kind, language) for v in group[f.name]] for f in fields]
            un_at = next((i for i, f in enumerate(fields) if f.name == "un_number"), None)
            names = self._chemical_names(group, language) if un_at is not None else None
            if names is not None:
                columns.insert(un_at + 1, field_label("chemical_name", language))
                values.insert(un_at + 1, names)
            tables.append(
                DetailTable(text(CHILD_TITLES[name], language), tuple(columns), tuple(zip(*values, strict=True)))
            )
        return tables

    def _chemical_names(self, group: pd.DataFrame, language: str) -> Sequence[str] | None:
        """Catalogue names of the group's UN numbers, unless the table names its goods itself."""
        column = "name_zh" if language == "zh" else "name_en"
        if "name" in group.columns or column not in self._chemicals.columns:
            return None
        names = self._chemicals[column].reindex(group["un_number"].astype(str).to_numpy())
        return [MISSING if _is_missing(n) else str(n) for n in names]
