"""Codec throughput on a 1000-LV VG's metadata: ``python -m bench.codec`` (from a checkout).

Prints MB/s for the eager parse (every token through the general parser),
the parse the daemon does (fast path, ``logical_volumes`` kept as text; the
first call checks the body, later calls of the same body hit the memo of
checked bodies), a lazy parse of a body never seen before (the canonical
check itself), and the tree writer.  The text is built by the load harness
(``bench.daemon``), so it has the shape LVM's vg_update sends.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from bench.daemon import PV, Identity, VGUpdate, lvm_uuid
from pylvmetad.metad.protocol import LAZY_SECTIONS as LAZY
from pylvmetad.wire import codec
from pylvmetad.wire.codec import format_tree, parse


def metadata_text(n_lvs: int, seed: int = 1) -> str:
    """The ``metadata`` section of a vg_update for a VG of ``n_lvs`` LVs on 8 PVs."""
    rng = random.Random(seed)
    pvs = [PV(lvm_uuid(rng), 2048 + i) for i in range(8)]
    vg = VGUpdate.build("vg_bench", pvs, n_lvs, Identity("skip", 1, "bench"), rng)
    request = vg.request(1).decode()
    start = request.index("metadata  {")
    return request[start : request.index("\ntoken =") + 1]


def rate(fn: Callable[[], object], size: int, seconds: float) -> float:
    """MB/s of ``fn`` over ``size`` characters, best of three runs of ``seconds``."""
    best = 0.0
    for _ in range(3):
        n, start = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
        best = max(best, n * size / elapsed / 1e6)
    return best


def shape_rates(mb: float, seconds: float) -> None:
    """MB/s of a whole parse per hostile shape (bench.hostile's), C accelerator and pure Python."""
    from bench.hostile import shapes

    saved = codec._accel
    paths = [("C", saved), ("Python", None)] if saved is not None else [("Python", None)]
    print(f"\nshapes of {mb:g} MB (MB/s of parse(), lazy sections on):")
    print("| shape | " + " | ".join(f"{name} MB/s" for name, _ in paths) + " |")
    print("|---|" + "---:|" * len(paths))
    try:
        for title, build in shapes(int(mb * 1e6)).items():
            text = build()[0].decode()[: -len("\n##\n")]
            figures: list[str] = []

            def one(t: str = text) -> None:
                codec.DEFAULT_PARSER.parse(t, LAZY)

            for _, accel in paths:
                codec._accel = accel
                figures.append(f"{rate(one, len(text), seconds):.1f}")
            print(f"| {title} | " + " | ".join(figures) + " |", flush=True)
    finally:
        codec._accel = saved


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lvs", type=int, default=1000)
    p.add_argument("--shape-mb", type=float, default=2.0, help="size of each hostile shape (default 2 MB)")
    p.add_argument("--seconds", type=float, default=1.0, help="per run (best of 3)")
    args = p.parse_args()
    text = metadata_text(args.lvs)
    size = len(text)
    tree = parse(text)
    lazy_tree = parse(text, LAZY)
    assert lazy_tree.section("metadata/logical_volumes").raw is not None, "lazy parse did not trigger"  # type: ignore[union-attr]
    fresh = [metadata_text(args.lvs, seed) for seed in range(2, 40)]
    turn = iter(range(1 << 62))

    print(f"accelerator: {'C (_ccodec)' if codec.ACCELERATED else 'none (pure Python)'}")

    def lazy_unseen() -> None:
        codec.DEFAULT_PARSER.verified.clear()  # measure the canonical check, not the memo
        parse(fresh[next(turn) % len(fresh)], LAZY)

    print(f"metadata of {args.lvs} LVs: {size / 1024:.0f} KiB")
    rows = [
        ("parse, eager (general parser)", lambda: codec._parse_eager(text)),
        ("parse, fast path, no lazy sections", lambda: parse(text)),
        ("parse, lazy, body not seen before", lazy_unseen),
        ("parse, lazy, body seen before (memo)", lambda: parse(text, LAZY)),
        ("format, eager tree", lambda: format_tree(tree)),
        ("format, lazy tree (raw body)", lambda: format_tree(lazy_tree)),
    ]
    for title, fn in rows:
        print(f"  {title:40s} {rate(fn, size, args.seconds):8.1f} MB/s")
    if codec.ACCELERATED:
        saved, codec._accel = codec._accel, None
        try:
            print(f"  {'parse, fast path, pure Python':40s} {rate(lambda: parse(text), size, args.seconds):8.1f} MB/s")
        finally:
            codec._accel = saved
    shape_rates(args.shape_mb, args.seconds)


if __name__ == "__main__":
    main()
