"""In-memory index of Key Blocks that keeps every fork and applies the paper's fork choice."""

from dataclasses import dataclass


@dataclass(frozen=True)
class ChainEntry:
    """One Key Block as the index sees it; ``score`` is its Metric_best."""

    block_hash: bytes
    parent_hash: bytes
    height: int
    score: float


class UnknownParentError(KeyError):
    """Raised when a block's parent is not in the index."""


class ChainIndex:
    """All known Key Blocks, every fork kept, with the current tip chosen by the fork-choice rule."""

    def __init__(self, genesis: ChainEntry) -> None:
        self._genesis = genesis
        self._entries: dict[bytes, ChainEntry] = {genesis.block_hash: genesis}
        self._by_height: dict[int, list[ChainEntry]] = {genesis.height: [genesis]}
        self._fork_heights = 0
        self._tip = genesis

    @property
    def genesis(self) -> ChainEntry:
        """The genesis entry the index was built on."""
        return self._genesis

    @property
    def tip(self) -> ChainEntry:
        """The head of the main chain."""
        return self._tip

    def validate(self, entry: ChainEntry) -> None:
        """Raise exactly as ``add`` would for ``entry``, without changing the index."""
        if entry.block_hash in self._entries:
            return
        parent = self._entries.get(entry.parent_hash)
        if parent is None:
            raise UnknownParentError(entry.parent_hash)
        if entry.height != parent.height + 1:
            raise ValueError(f"block height {entry.height} does not follow parent height {parent.height}")

    def add(self, entry: ChainEntry) -> bool:
        """Insert ``entry``; return True iff it became the new tip."""
        if entry.block_hash in self._entries:
            return False
        self.validate(entry)
        self._entries[entry.block_hash] = entry
        siblings = self._by_height.setdefault(entry.height, [])
        siblings.append(entry)
        if len(siblings) == 2:
            self._fork_heights += 1
        if _rank(entry) > _rank(self._tip):
            self._tip = entry
            return True
        return False

    def get(self, block_hash: bytes) -> ChainEntry | None:
        """Return the entry for ``block_hash``, or None if unknown."""
        return self._entries.get(block_hash)

    def __contains__(self, block_hash: object) -> bool:
        return block_hash in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def path_to(self, block_hash: bytes) -> list[ChainEntry]:
        """Return the entries from genesis to ``block_hash`` inclusive; KeyError if unknown."""
        entry = self._entries.get(block_hash)
        if entry is None:
            raise KeyError(block_hash)
        path = [entry]
        while entry.block_hash != self._genesis.block_hash:
            entry = self._entries[entry.parent_hash]
            path.append(entry)
        path.reverse()
        return path

    def main_chain(self) -> list[ChainEntry]:
        """Return the entries from genesis to the tip."""
        return self.path_to(self._tip.block_hash)

    def main_at(self, height: int) -> ChainEntry | None:
        """The main chain's entry at ``height``, or None above the tip (walks down from the tip: cheap near it)."""
        if height < self._genesis.height or height > self._tip.height:
            return None
        entry = self._tip
        while entry.height > height:
            entry = self._entries[entry.parent_hash]
        return entry

    def at_height(self, height: int) -> list[ChainEntry]:
        """Return every entry at ``height``, across all forks, in insertion order."""
        return list(self._by_height.get(height, ()))

    def is_ancestor(self, ancestor: bytes, descendant: bytes) -> bool:
        """Return True iff ``ancestor`` lies on the path to ``descendant`` (a block is its own ancestor)."""
        target = self._entries.get(ancestor)
        entry = self._entries.get(descendant)
        if target is None or entry is None:
            return False
        while entry.height > target.height:
            entry = self._entries[entry.parent_hash]
        return entry.block_hash == target.block_hash

    def stale_count(self) -> int:
        """Return the number of blocks that are not on the main chain."""
        # The main chain holds exactly one block per height from genesis to tip.
        return len(self._entries) - (self._tip.height - self._genesis.height + 1)

    def fork_heights(self) -> int:
        """Return the number of heights that hold more than one block."""
        return self._fork_heights


def _rank(entry: ChainEntry) -> tuple[int, float, bytes]:
    """Fork choice: the longest chain, then the best Metric_best (section III-B).

    The paper leaves full ties open; "first seen" would leave nodes split for good once no further block
    comes (as at the last task), so the smaller block hash wins: every node reaches the same tip.
    """
    inverted = bytes(255 - b for b in entry.block_hash)
    return (entry.height, entry.score, inverted)
