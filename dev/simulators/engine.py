"""Rendered blocks, their cache, and windows over them: what the HTTP layer pages through."""

from __future__ import annotations

import bisect
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field

import numpy as np

from simulators.canonical import HourData, build_hour, draw_presence, hours_of
from simulators.config import SimulatorConfig
from simulators.generators import asset_versions
from simulators.render import Block, render_hour
from simulators.specs import MODULE_SPECS, VERSIONS
from simulators.world import (
    ACCOUNT_COUNT,
    ASSET_COUNT,
    EXTENSION_COUNT,
    US_PER_HOUR,
    WORLD_START_US,
    build_world,
)

NDJSON_CHUNK_BYTES = 1 << 20
# A page's records come in this many runs of the window's order, the runs shuffled: the
# contract promises no order within a page (pages follow each other in window order).
PAGE_RUNS = 8
STATE_POPULATION = {"assets": ASSET_COUNT, "extensions": EXTENSION_COUNT, "budgets": ACCOUNT_COUNT}
# Current state looks back at most this far for an entity's latest change.
STATE_LOOKBACK_HOURS = 24 * 400


@dataclass(frozen=True)
class Segment:
    block: Block
    first: int
    stop: int

    @property
    def count(self) -> int:
        return self.stop - self.first


@dataclass
class Window:
    """The records of one request's window, in wire order, as slices of cached blocks."""

    segments: list[Segment]
    starts: list[int] = field(init=False)
    total: int = field(init=False)

    def __post_init__(self) -> None:
        self.starts = []
        position = 0
        for segment in self.segments:
            self.starts.append(position)
            position += segment.count
        self.total = position

    @property
    def nbytes(self) -> int:
        return sum(int(s.block.offsets[s.stop] - s.block.offsets[s.first]) for s in self.segments)

    def spans(self, offset: int, count: int) -> list[memoryview]:
        """The bytes of records [offset, offset + count), newline-terminated."""
        pieces: list[memoryview] = []
        index = max(0, bisect.bisect_right(self.starts, offset) - 1)
        remaining = min(count, self.total - offset)
        while remaining > 0 and index < len(self.segments):
            segment = self.segments[index]
            first = segment.first + max(0, offset - self.starts[index])
            stop = min(segment.stop, first + remaining)
            if stop > first:
                pieces.extend(segment.block.span(first, stop))
                remaining -= stop - first
            index += 1
        return pieces

    def records(self, offset: int, limit: int, shuffle: str | None = None) -> bytes:
        """Records [offset, offset + limit) as the inside of a JSON array.

        With `shuffle` (a key naming the request), the page's records come in a
        deterministic order of their own: `PAGE_RUNS` runs of window order, shuffled.
        """
        count = max(0, min(limit, self.total - offset))
        if shuffle is None or count < 2:
            pieces = self.spans(offset, count)
        else:
            runs = min(PAGE_RUNS, count)
            digest = hashlib.blake2b(f"{shuffle}|{offset}|{limit}".encode(), digest_size=8)
            rng = np.random.default_rng(int.from_bytes(digest.digest(), "big"))
            cuts = np.sort(rng.choice(np.arange(1, count), runs - 1, replace=False)).tolist()
            bounds = list(zip([0, *cuts], [*cuts, count], strict=True))
            order = rng.permutation(runs).tolist()
            if order == sorted(order):
                order.reverse()
            pieces = [
                p
                for run in order
                for p in self.spans(offset + bounds[run][0], bounds[run][1] - bounds[run][0])
            ]
        if not pieces:
            return b""
        # orjson escapes newlines inside strings, so the only raw newlines are record separators.
        return b"".join(pieces)[:-1].replace(b"\n", b",")

    def ndjson(self) -> Iterator[memoryview]:
        for segment in self.segments:
            for piece in segment.block.span(segment.first, segment.stop):
                for start in range(0, len(piece), NDJSON_CHUNK_BYTES):
                    yield piece[start : start + NDJSON_CHUNK_BYTES]


class BlockCache:
    """LRU of rendered blocks bounded by bytes; rebuilding an evicted block is deterministic."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._blocks: OrderedDict[Hashable, Block] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Block | None:
        with self._lock:
            block = self._blocks.get(key)
            if block is not None:
                self._blocks.move_to_end(key)
            return block

    def put(self, key: Hashable, block: Block) -> None:
        with self._lock:
            previous = self._blocks.pop(key, None)
            if previous is not None:
                self._bytes -= previous.nbytes
            self._blocks[key] = block
            self._bytes += block.nbytes
            while self._bytes > self.budget_bytes and len(self._blocks) > 1:
                _, evicted = self._blocks.popitem(last=False)
                self._bytes -= evicted.nbytes

    @property
    def nbytes(self) -> int:
        return self._bytes


class Engine:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.cache = BlockCache(config.cache_mb * 2**20)
        # One builder at a time: concurrent requests for one window wait instead of rendering twice.
        self._build_lock = threading.Lock()

    def _cached(self, key: Hashable, build: object) -> Block:
        block = self.cache.get(key)
        if block is not None:
            return block
        with self._build_lock:
            block = self.cache.get(key)
            if block is None:
                assert callable(build)
                block = build()
                self.cache.put(key, block)
            return block

    def block(self, module: str, entity: str, hour: int, partition: str | None = None) -> Block:
        if partition is not None:
            parent = self.block(module, entity, hour)
            assert parent.partition is not None
            return self._cached(
                (module, entity, hour, partition),
                lambda: parent.select(parent.partition == partition),
            )
        return self._cached(
            (module, entity, hour),
            lambda: render_hour(build_hour(self.config, module, entity, hour), self.config.seed),
        )

    def window(
        self, module: str, entity: str, start_us: int, end_us: int, partition: str | None = None
    ) -> Window:
        return Window(list(self.segments(module, entity, start_us, end_us, partition)))

    def segments(
        self, module: str, entity: str, start_us: int, end_us: int, partition: str | None = None
    ) -> Iterator[Segment]:
        """Lazily, hour by hour, so a streamed window holds one hour at a time."""
        for hour in hours_of(max(start_us, WORLD_START_US), end_us):
            block = self.block(module, entity, hour, partition)
            first = int(np.searchsorted(block.sort_us, start_us, side="left"))
            stop = int(np.searchsorted(block.sort_us, end_us, side="left"))
            if stop > first:
                yield Segment(block, first, stop)

    def current_state(self, module: str, entity: str, now_us: int) -> Window:
        """The latest snapshot of every entity changed up to `now_us` (no chaos: a clean listing)."""
        key = ("current", module, entity, now_us // US_PER_HOUR, now_us)
        block = self._cached(key, lambda: self._render_current_state(module, entity, now_us))
        return Window([Segment(block, 0, block.count)] if block.count else [])

    def _render_current_state(self, module: str, entity: str, now_us: int) -> Block:
        spec = MODULE_SPECS[module].entity(entity)
        population = STATE_POPULATION[entity]
        latest: dict[str, tuple[HourData, int]] = {}
        hour = now_us // US_PER_HOUR
        oldest = max(WORLD_START_US // US_PER_HOUR, hour - STATE_LOOKBACK_HOURS)
        while len(latest) < population and hour >= oldest and self.config.volume_of(module):
            data = build_hour(self.config, module, entity, hour)
            for row in range(data.count - 1, -1, -1):
                entity_id = data.ids[row]
                if data.ingested_us[row] < now_us and entity_id not in latest:
                    latest[entity_id] = (data, row)
            hour -= 1
        picks = sorted(latest.values(), key=lambda pick: int(pick[0].ingested_us[pick[1]]))
        if not picks:
            return Block.from_records([], np.zeros(0, dtype=np.int64))
        names = list(picks[0][0].columns)
        columns = {name: _stack([data.columns[name][row] for data, row in picks]) for name in names}
        size = len(picks)
        snapshot = HourData(
            module=MODULE_SPECS[module],
            entity=spec,
            hour=now_us // US_PER_HOUR,
            columns=columns,
            ingested_us=np.array([int(d.ingested_us[r]) for d, r in picks], dtype=np.int64),
            ids=columns[spec.key[0]],
            malformed=np.zeros(size, dtype=bool),
            malformed_kind=[None] * size,
            malformed_field=[None] * size,
            duplicate=np.zeros(size, dtype=bool),
            late=np.zeros(size, dtype=bool),
        )
        return render_hour(snapshot, self.config.seed, salt=1)

    def asset_versions(self, asset_id: str, now_us: int) -> Window | None:
        world = build_world(self.config.seed)
        matches = np.flatnonzero(world.asset_ids == asset_id)
        if not len(matches):
            return None
        asset_index = int(matches[0])
        key = ("versions", asset_id, now_us)
        block = self._cached(key, lambda: self._render_versions(asset_index, now_us))
        return Window([Segment(block, 0, block.count)] if block.count else [])

    def _render_versions(self, asset_index: int, now_us: int) -> Block:
        """An asset's versions, with the wire's mess: casing, time spellings, optional
        fields left out (status, published_at, updated_at; asset_id, which the path names)."""
        versions = asset_versions(build_world(self.config.seed), asset_index, now_us)
        size = len(versions)
        if not size:
            return Block.from_records([], np.zeros(0, dtype=np.int64))
        columns = {
            name: _stack([v[name] for v in versions])
            for name in ("asset_id", "version", "status", "published_at", "updated_at")
        }
        rng = np.random.default_rng([self.config.seed, asset_index, 3])
        draw_presence(rng, VERSIONS, columns, size)
        published = columns["published_at"]
        data = HourData(
            module=MODULE_SPECS["registry"],
            entity=VERSIONS,
            hour=now_us // US_PER_HOUR,
            columns=columns,
            ingested_us=published,
            ids=columns["asset_id"],
            malformed=np.zeros(size, dtype=bool),
            malformed_kind=[None] * size,
            malformed_field=[None] * size,
            duplicate=np.zeros(size, dtype=bool),
            late=np.zeros(size, dtype=bool),
        )
        return render_hour(data, self.config.seed, rng=rng)


def _stack(values: list[object]) -> np.ndarray:
    if values and isinstance(values[0], (bool, np.bool_)):
        return np.array(values, dtype=bool)
    if values and isinstance(values[0], (int, np.integer)):
        return np.array(values, dtype=np.int64)
    array = np.empty(len(values), dtype=object)
    for index, value in enumerate(values):
        array[index] = value
    return array
