# The C fast path of pylvmetad.wire.codec (see _ccodec.c).
from collections.abc import Callable
from typing import Any

#: SHA-256 of the _ccodec.c this module was built from ("" when setup.py did not build it)
SOURCE_DIGEST: str

def configure(section_type: type, items: object, raw: object, /) -> None: ...
def configure_compare(compare_values: Callable[[Any, Any], int], /) -> None: ...
def compare_trees(a: Any, b: Any, /) -> int: ...
def same_trees(a: Any, b: Any, /) -> bool: ...
def strip_device_hints(items: list[Any], /) -> object: ...
def configure_format(marked_list: type, /) -> None: ...
def format_tree(tree: Any, depth: int, /) -> str | None: ...
def first_value(items: list[Any], key: str, /) -> object: ...
def first_fields(items: list[Any], keys: tuple[Any, ...], defaults: tuple[Any, ...], /) -> object: ...
def first_values(items: list[Any], keys: tuple[str, ...], /) -> object: ...
def build(
    pieces: list[str],
    raws: list[str],
    pairs: dict[object, object],
    keys: dict[str, str],
    short_max: int,
    pairs_max: int,
    keys_max: int,
    max_depth: int,
    lazy_max_depth: int,
    spans: SpanMemo | None = None,
    /,
) -> object: ...
def cut_lazy(
    text: str,
    names: tuple[str, ...],
    verified: list[tuple[int, str]],
    min_chars: int,
    one_max: int,
    count_max: int,
    chars_max: int,
    levels: int,
    max_chars: int,
    /,
) -> Any: ...
def parse_text(
    names: tuple[str, ...],
    pairs: dict[object, object],
    keys: dict[str, str],
    verified: list[tuple[int, str]],
    spans: SpanMemo | None,
    limits: tuple[int, int, int, int, int, int, int, int, int, int],
    text: str,
    /,
) -> object: ...
def lazy_body_end(text: str, start: int, depth: int, levels: int, endpos: int, /) -> int: ...

class SpanMemo:
    """A unit's source text -> the object it parses to (a fixed table; see _ccodec.c)."""

    def clear(self) -> None: ...
    def chars(self) -> int: ...
    def stats(self) -> tuple[int, int]: ...
