"""Babel extractor: collects the data map's wording into the translation catalog.

babel.cfg points `pybabel extract` at this for `app/datamap/*.yaml`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import yaml

from app.datamap import TRANSLATABLE_KEYS


def _walk(node: yaml.Node) -> Iterator[tuple[int, str]]:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if (
                isinstance(key_node, yaml.ScalarNode)
                and key_node.value in TRANSLATABLE_KEYS
                and isinstance(value_node, yaml.ScalarNode)
            ):
                text = yaml.safe_load(yaml.serialize(value_node))
                yield value_node.start_mark.line + 1, text
            else:
                yield from _walk(value_node)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _walk(item)


def extract_datamap(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Any
) -> Iterator[tuple[int, str, str, list[str]]]:
    root = yaml.compose(fileobj.read().decode("utf-8"))
    if root is None:
        return
    for lineno, text in _walk(root):
        yield lineno, "gettext", text, ["data map"]
