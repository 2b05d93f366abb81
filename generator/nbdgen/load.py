# Loads api.yaml, remembering the line of every mapping and key so errors can name it.
import os

import yaml


class SpecError(Exception):
    """A problem in the spec, already formatted as 'FILE:LINE: message'."""


class Node(dict):
    """A YAML mapping that knows where it and each of its keys came from."""

    line = 0
    key_lines = None

    def line_of(self, key):
        return (self.key_lines or {}).get(key, self.line)


class Seq(list):
    """A YAML sequence that knows its line."""

    line = 0


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader, node):
    loader.flatten_mapping(node)
    result = Node()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            raise SpecError(f"{os.path.basename(loader.name)}:{key_node.start_mark.line + 1}: "
                           f"duplicate key {key!r}")
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader, node):
    result = Seq(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load(path):
    """Returns the top-level Node of the YAML file at path."""
    with open(path, encoding="utf-8") as f:
        loader = _Loader(f)
        loader.name = path
        try:
            data = loader.get_single_data()
        except yaml.YAMLError as e:
            raise SpecError(f"{path}: {e}") from None
        finally:
            loader.dispose()
    if not isinstance(data, Node):
        raise SpecError(f"{path}:1: the spec must be a mapping")
    return data


def load_abi(path):
    """{symbol: version node} from an ABI reference file of 'SYMBOL NODE' lines (# comments)."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                sym, node = line.split()
                out[sym] = node
    return out
