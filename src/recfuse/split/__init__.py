"""Splits: leave-one-out by time, global temporal, per-user ratio, group-disjoint."""

from recfuse.split.group import assign_groups, group_components
from recfuse.split.protocols import (
    PROTOCOLS,
    group_disjoint,
    leave_one_out,
    make_split,
    ratio,
    temporal,
)
from recfuse.split.split import Split, Stage

__all__ = [
    "PROTOCOLS",
    "Split",
    "Stage",
    "assign_groups",
    "group_components",
    "group_disjoint",
    "leave_one_out",
    "make_split",
    "ratio",
    "temporal",
]
