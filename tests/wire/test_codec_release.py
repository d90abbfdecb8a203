"""``release_steps`` frees a tree in bounded steps and never changes what someone else holds (issue 17)."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Generator

from pylvmetad.wire import codec
from pylvmetad.wire.codec import Section, format_tree, parse, release_steps


def run(steps: Generator[None, None, None]) -> int:
    """Drive the generator to its end; how many times it yielded."""
    yields = 0
    for _ in steps:
        yields += 1
    return yields


def big_text(keys: int, atoms: int) -> str:
    return (
        'request="hello"\n'
        + "".join(f'k{i} {{ a={i}\ns="x{i}"\nl=[1,2,"{i}"] }}\n' for i in range(keys // 4))
        + "".join(f"p{i}={i}\n" for i in range(keys))
        + "x=["
        + ",".join(["7"] * atoms)
        + ']\nlogical_volumes {\n\tlv {\n\t\tid="a"\n\t}\n}\n'
    )


def test_a_huge_tree_is_freed_in_bounded_steps() -> None:
    text = big_text(100_000, 500_000)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tree = codec.Parser().parse(text, frozenset({"logical_volumes"}))
        built = tracemalloc.get_traced_memory()[0] - before
        holder = [tree]
        del tree
        yields = run(release_steps(holder))
        left = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # 125 k pairs at the top, 75 k inside, 500 k atoms: at least a step per RELEASE_PAIRS / RELEASE_ATOMS
    assert yields >= 200_000 // codec.RELEASE_PAIRS + 500_000 // codec.RELEASE_ATOMS
    assert built > 10_000_000 and left < built // 100  # all of it is gone at the end


def test_what_others_hold_is_left_whole() -> None:
    tree = parse(big_text(5_000, 10_000), frozenset({"logical_volumes"}))
    kept_section = tree.section("k3")
    kept_list = tree.child("x")
    kept_pair = tree.items[7]
    lazy = tree.section("logical_volumes")
    assert kept_section is not None and isinstance(kept_list, list) and lazy is not None
    want = (format_tree(kept_section), list(kept_list), kept_pair, lazy.raw)
    holder = [tree]
    del tree
    run(release_steps(holder))
    assert (format_tree(kept_section), list(kept_list), kept_pair, lazy.raw) == want


def test_a_tree_held_elsewhere_is_not_touched() -> None:
    tree = parse(big_text(5_000, 10_000))
    text = format_tree(tree)
    assert run(release_steps([tree])) == 0
    assert format_tree(tree) == text
    inner = Section([("a", Section([("b", [1] * 10_000)]))])
    child = inner.items[0][1]
    assert isinstance(child, Section)
    run(release_steps([inner]))
    assert child.items[0][1] == [1] * 10_000  # the child held here keeps its list
