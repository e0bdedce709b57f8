"""Selective LLM guidance (S-LLMR style): offline teacher pairs, a reliability gate, an
auxiliary pairwise loss around any torch backbone. See docs/guidance.md."""

from recfuse.guidance.gate import fit_gate, gate_features, reliability_curve
from recfuse.guidance.guided import BACKBONES, Guidance, GuidedBPR, GuidedSASRec, pair_accuracy
from recfuse.guidance.pairs import PairSet, build_pairs, check_pairs, holdout_split
from recfuse.guidance.prepare import Prepared, accuracy_by, prepare_guidance
from recfuse.guidance.teachers import LLMTeacher, MiniLMTeacher, TeacherOutput, teacher_from_name

__all__ = [
    "BACKBONES",
    "Guidance",
    "GuidedBPR",
    "GuidedSASRec",
    "LLMTeacher",
    "MiniLMTeacher",
    "PairSet",
    "Prepared",
    "TeacherOutput",
    "accuracy_by",
    "build_pairs",
    "check_pairs",
    "fit_gate",
    "gate_features",
    "holdout_split",
    "pair_accuracy",
    "prepare_guidance",
    "reliability_curve",
    "teacher_from_name",
]
