"""Item features for the probes: Morgan fingerprints (RDKit), TF-IDF, or frozen MiniLM embeddings.

All features come back as a CSR matrix [n_rows, n_features] (float32) so one sparse network
handles fingerprints, bag-of-words and dense embeddings alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from recfuse.errors import ConfigError


def require_rdkit(purpose: str) -> None:
    """Raise a one-line `ConfigError` when RDKit (the optional ``chem`` extra) is missing."""
    try:
        import rdkit  # noqa: F401
    except ImportError:
        raise ConfigError(
            f"{purpose} needs RDKit, which is not installed; install the chem extra: "
            "pip install 'recfuse[chem]' (make install includes it)"
        ) from None


def morgan_fingerprints(
    smiles: Sequence[str], radius: int = 2, n_bits: int = 2048
) -> sp.csr_matrix:
    """Binary Morgan (ECFP-like) fingerprints, CSR [n_rows, n_bits] float32.

    Each distinct SMILES is computed once; an unparseable SMILES gives an empty row.
    """
    require_rdkit("Morgan fingerprints")
    from rdkit import Chem, RDLogger
    from rdkit.Chem import rdFingerprintGenerator

    RDLogger.DisableLog("rdApp.*")  # type: ignore[attr-defined]  # bad SMILES: an empty row
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    bits_of: dict[str, np.ndarray] = {}
    for smi in set(smiles):
        mol = Chem.MolFromSmiles(smi)
        on = generator.GetFingerprint(mol).GetOnBits() if mol is not None else []
        bits_of[smi] = np.asarray(list(on), dtype=np.int32)
    rows = [bits_of[s] for s in smiles]
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    indices = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int32)
    data = np.ones(len(indices), dtype=np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=(len(rows), n_bits))


def tfidf_features(
    texts: Sequence[str], fit_rows: np.ndarray, max_features: int = 20000
) -> sp.csr_matrix:
    """TF-IDF [n_rows, ≤max_features], vocabulary and IDF fitted on ``fit_rows`` only.

    Fitting on the training rows keeps held-out text out of the vocabulary and the IDF weights.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(
        max_features=max_features,
        sublinear_tf=True,
        min_df=2,
        stop_words="english",
        dtype=np.float32,
    )
    texts = list(texts)
    vectorizer.fit([texts[i] for i in fit_rows])
    return sp.csr_matrix(vectorizer.transform(texts), dtype=np.float32)


def minilm_features(texts: Sequence[str], batch_size: int = 32) -> sp.csr_matrix:
    """Mean-pooled last-layer MiniLM embeddings, L2-normalized, CSR [n_rows, 384].

    Through the one text-to-vector path (`recfuse.features.embed`), cached per text: the model
    is frozen and a text's embedding does not depend on any split, so one cache serves every
    seed (and every other part that embeds the same texts).
    """
    from recfuse.features.embed import embed

    return sp.csr_matrix(embed(list(texts), "minilm", batch_size=batch_size, max_length=256))


FEATURE_KINDS = ("morgan", "tfidf", "minilm", "precomputed")


def one_hot(codes: np.ndarray, n_codes: int) -> sp.csr_matrix:
    """One-hot CSR [len(codes), n_codes] float32; a negative code gives an empty row."""
    codes = np.asarray(codes)
    keep = codes >= 0
    rows = np.flatnonzero(keep)
    return sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, codes[keep])), shape=(len(codes), n_codes)
    )
