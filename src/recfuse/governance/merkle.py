"""RFC 6962 / RFC 9162 Merkle tree hashing.

A leaf hash is ``SHA-256(0x00 || entry)`` and an interior node is ``SHA-256(0x01 || left || right)``;
the two prefixes keep a leaf from ever being passed off as a node. A tree of ``n`` leaves splits at
``k``, the largest power of two smaller than ``n``: ``MTH(D[n]) = H(0x01 || MTH(D[0:k]) ||
MTH(D[k:n]))``. The empty tree's hash is ``SHA-256("")``.

Because every left subtree in that recursion is a *perfect* tree aligned on its own size, the root of
any size is a right fold over the perfect subtrees given by the binary digits of ``n`` (the
"frontier"). The ledger stores the perfect-subtree hashes, so an append touches O(log n) of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

# (level, index) -> hash of the perfect subtree covering leaves [index * 2**level, (index+1) * 2**level)
NodeLookup = Callable[[int, int], bytes]


def leaf_hash(entry: bytes) -> bytes:
    """``SHA-256(0x00 || entry)``."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    if n < 2:
        raise ValueError(f"a split needs at least 2 leaves, not {n}")
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over already-hashed leaves, straight from the RFC's recursive definition.

    O(n); the reference the incremental code is checked against.
    """
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = split_point(n)
    return node_hash(root_of(leaf_hashes[:k]), root_of(leaf_hashes[k:]))


def frontier_positions(size: int) -> list[tuple[int, int]]:
    """(level, index) of the perfect subtrees that make up a tree of ``size`` leaves, left to right."""
    positions = []
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            positions.append((level, start >> level))
            start += 1 << level
    return positions


def root_from_frontier(frontier: Sequence[bytes]) -> bytes:
    """Fold the frontier (left to right, largest subtree first) into the tree head."""
    if not frontier:
        return EMPTY_ROOT
    root = frontier[-1]
    for left in reversed(frontier[:-1]):
        root = node_hash(left, root)
    return root


def subtree_hash(start: int, end: int, node: NodeLookup) -> bytes:
    """MTH of leaves ``[start, end)`` given perfect-subtree hashes from ``node``.

    The RFC recursion only ever asks for ranges whose left halves are aligned perfect trees, so
    every lookup hits a stored node.
    """
    n = end - start
    if n <= 0:
        return EMPTY_ROOT
    if n & (n - 1) == 0 and start % n == 0:
        return node(n.bit_length() - 1, start // n)
    k = split_point(n)
    return node_hash(subtree_hash(start, start + k, node), subtree_hash(start + k, end, node))


def all_levels(leaf_hashes: Sequence[bytes]) -> list[list[bytes]]:
    """Every perfect-subtree hash: ``levels[L][i]`` covers leaves ``[i * 2**L, (i+1) * 2**L)``."""
    levels = [list(leaf_hashes)]
    while len(levels[-1]) >= 2:
        below = levels[-1]
        levels.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])
    return levels
