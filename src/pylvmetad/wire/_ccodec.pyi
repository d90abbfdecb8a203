# The C fast path of pylvmetad.wire.codec (see _ccodec.c).
def configure(section_type: type, items: object, raw: object, /) -> None: ...
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
    /,
) -> object: ...
def lazy_body_end(text: str, start: int, depth: int, levels: int, endpos: int, /) -> int: ...
