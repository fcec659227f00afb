"""Babel extractor: collects the data map's wording into the translation catalog.

babel.cfg points `pybabel extract` at this for `app/datamap/*.yaml`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import yaml

from app.datamap import TRANSLATABLE_KEYS


def _walk(node: yaml.Node, keys: frozenset[str]) -> Iterator[tuple[int, str]]:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if (
                isinstance(key_node, yaml.ScalarNode)
                and key_node.value in keys
                and isinstance(value_node, yaml.ScalarNode)
            ):
                text = yaml.safe_load(yaml.serialize(value_node))
                yield value_node.start_mark.line + 1, text
            else:
                yield from _walk(value_node, keys)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _walk(item, keys)


def _extract(
    fileobj: IO[bytes], keys: frozenset[str], comment: str
) -> Iterator[tuple[int, str, str, list[str]]]:
    root = yaml.compose(fileobj.read().decode("utf-8"))
    if root is None:
        return
    for lineno, text in _walk(root, keys):
        yield lineno, "gettext", text, [comment]


def extract_datamap(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Any
) -> Iterator[tuple[int, str, str, list[str]]]:
    yield from _extract(fileobj, frozenset(TRANSLATABLE_KEYS), "data map")


def extract_jurisdictions(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Any
) -> Iterator[tuple[int, str, str, list[str]]]:
    """The places' names in the rules table (app/jurisdictions/rules.yaml): `default.name`,
    and `name` of each group and place. The authorities' names are proper names and stay as
    the table writes them."""
    root = yaml.compose(fileobj.read().decode("utf-8"))
    if not isinstance(root, yaml.MappingNode):
        return
    for section_key, section in root.value:
        entries = [section] if section_key.value == "default" else _values(section)
        for entry in entries:
            for key_node, value_node in _pairs(entry):
                if key_node.value == "name" and isinstance(value_node, yaml.ScalarNode):
                    text = yaml.safe_load(yaml.serialize(value_node))
                    yield value_node.start_mark.line + 1, "gettext", text, ["place"]


def _values(node: yaml.Node) -> list[yaml.Node]:
    return [value for _, value in node.value] if isinstance(node, yaml.MappingNode) else []


def _pairs(node: yaml.Node) -> list[tuple[yaml.Node, yaml.Node]]:
    return list(node.value) if isinstance(node, yaml.MappingNode) else []
