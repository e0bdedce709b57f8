"""Clever-Hans leakage audit: can a model predict the target from who made the item?

Three probes over a table of items with a group column (author, assay, brand):

1. who-made-it: predict the group from the item's features, top-1 / top-5 against chance;
2. group-only model: predict the target from (context, out-of-fold group probabilities) alone,
   against a baseline that sees the features;
3. split gap: the baseline under a random split against a group-disjoint split.

`run_audit` runs them over seeds; `build_report` turns the results into a verdict and a
recommended split (Markdown and JSON).
"""

from recfuse.audit.audit import AuditConfig, run_audit
from recfuse.audit.cases import load_audit_table
from recfuse.audit.report import build_report, verdict
from recfuse.audit.splits import (
    bemis_murcko_scaffolds,
    group_disjoint_split,
    random_split,
    scaffold_split,
    similarity_clusters,
    similarity_split,
)
from recfuse.audit.table import AuditTable

__all__ = [
    "AuditConfig",
    "AuditTable",
    "bemis_murcko_scaffolds",
    "build_report",
    "group_disjoint_split",
    "load_audit_table",
    "random_split",
    "run_audit",
    "scaffold_split",
    "similarity_clusters",
    "similarity_split",
    "verdict",
]
