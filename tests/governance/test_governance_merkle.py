"""RFC 6962 reference vectors and proofs for every tree size up to 64, on the real SQLite ledger."""

from __future__ import annotations

import pytest

from recfuse.governance.ledger import Ledger
from recfuse.governance.merkle import (
    EMPTY_ROOT,
    NodeLookup,
    all_levels,
    leaf_hash,
    node_hash,
    root_of,
)
from recfuse.governance.proofs import (
    consistency_path,
    inclusion_path,
    root_from_inclusion,
    verify_consistency,
    verify_inclusion,
)

# The certificate-transparency reference inputs (RFC 6962 test data) and their tree heads.
CT_LEAVES = [
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
              "606162636465666768696a6b6c6d6e6f"]
]  # fmt: skip
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf index, tree size, audit path) from the same reference suite.
CT_INCLUSION = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip
# (old size, new size, consistency proof).
CT_CONSISTENCY = [
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip


def _lookup(leaves: list[bytes]) -> NodeLookup:
    levels = all_levels(leaves)
    return lambda level, index: levels[level][index]


def test_reference_roots_from_the_rfc_definition() -> None:
    hashes = [leaf_hash(x) for x in CT_LEAVES]
    assert EMPTY_ROOT.hex() == CT_ROOTS[0]
    for n in range(len(CT_LEAVES) + 1):
        assert root_of(hashes[:n]).hex() == CT_ROOTS[n], n


def test_reference_roots_from_the_sqlite_ledger(tmp_path) -> None:
    """Raw entries appended one by one: the ledger's incremental nodes give the same heads."""
    with Ledger(tmp_path / "l.db") as ledger:
        assert ledger.root().hex() == CT_ROOTS[0]
        for n, body in enumerate(CT_LEAVES, start=1):
            with ledger._write() as conn:  # raw bytes, bypassing the JSON envelope
                ledger._insert_leaf(conn, n - 1, body)
            assert ledger.root().hex() == CT_ROOTS[n]
            assert [ledger.root(m).hex() for m in range(n + 1)] == CT_ROOTS[: n + 1]


@pytest.mark.parametrize(("index", "size", "path"), CT_INCLUSION)
def test_reference_inclusion_proofs(index: int, size: int, path: list[str]) -> None:
    hashes = [leaf_hash(x) for x in CT_LEAVES]
    produced = inclusion_path(index, size, _lookup(hashes[:size]))
    assert [h.hex() for h in produced] == path
    root = bytes.fromhex(CT_ROOTS[size])
    assert verify_inclusion(index, size, hashes[index], produced, root)


@pytest.mark.parametrize(("old", "new", "proof"), CT_CONSISTENCY)
def test_reference_consistency_proofs(old: int, new: int, proof: list[str]) -> None:
    hashes = [leaf_hash(x) for x in CT_LEAVES]
    produced = consistency_path(old, new, _lookup(hashes[:new]))
    assert [h.hex() for h in produced] == proof
    old_root, new_root = bytes.fromhex(CT_ROOTS[old]), bytes.fromhex(CT_ROOTS[new])
    assert verify_consistency(old, new, old_root, new_root, produced)
    assert not verify_consistency(old, new, new_root, old_root, produced)


def test_every_proof_up_to_64_on_the_ledger(tmp_path) -> None:
    """All inclusion proofs (every leaf, every size) and all consistency proofs (every pair of
    sizes) for trees of 1..64 entries, produced from SQLite and checked against the reference."""
    with Ledger(tmp_path / "l.db") as ledger:
        ledger.append_many([{"n": i, "payload": "x" * (i % 7)} for i in range(64)])
        leaves = [leaf_hash(ledger.body(i)) for i in range(64)]
        roots = [root_of(leaves[:n]) for n in range(65)]
        for n in range(65):
            assert ledger.root(n) == roots[n]
        checked = 0
        for n in range(1, 65):
            for i in range(n):
                path = ledger.inclusion_proof(i, n)
                assert verify_inclusion(i, n, leaves[i], path, roots[n]), (i, n)
                # the same path must not prove another position or another tree
                assert not verify_inclusion((i + 1) % n, n, leaves[i], path, roots[n]) or n == 1
                assert not verify_inclusion(i, n, leaves[i], path, roots[n - 1])
                checked += 1
            for m in range(n + 1):
                proof = ledger.consistency_proof(m, n)
                assert verify_consistency(m, n, roots[m], roots[n], proof), (m, n)
                if 0 < m < n:
                    assert not verify_consistency(m, n, roots[m - 1], roots[n], proof)
        assert checked == 64 * 65 // 2


def test_corrupted_proofs_are_rejected(tmp_path) -> None:
    with Ledger(tmp_path / "l.db") as ledger:
        ledger.append_many([{"n": i} for i in range(21)])
        root, leaf = ledger.root(), ledger.leaf(13)
        path = ledger.inclusion_proof(13)
        assert verify_inclusion(13, 21, leaf, path, root)
        for k in range(len(path)):
            bad = list(path)
            bad[k] = bytes([bad[k][0] ^ 8]) + bad[k][1:]
            assert not verify_inclusion(13, 21, leaf, bad, root)
        assert not verify_inclusion(13, 21, leaf, path[:-1], root)
        assert not verify_inclusion(13, 21, leaf, [*path, root], root)
        assert not verify_inclusion(13, 42, leaf, path, root)
        assert root_from_inclusion(21, 21, leaf, path) is None
        old = ledger.root(6)
        proof = ledger.consistency_proof(6)
        assert verify_consistency(6, 21, old, root, proof)
        assert not verify_consistency(6, 21, old, root, proof[:-1])
        assert not verify_consistency(6, 21, old, root, [proof[0], *proof])
        assert not verify_consistency(7, 21, old, root, proof)
        assert not verify_consistency(6, 21, node_hash(old, old), root, proof)
