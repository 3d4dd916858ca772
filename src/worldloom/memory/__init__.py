"""Long-term memory: pluggable context policies that choose which past frames each new frame attends to.

One interface (:class:`MemoryPolicy`: ``observe`` each finished frame, ``select`` before each new
one) and one loader of its choice into the KV cache (:class:`MemoryKV`) serve play, eval, bench and
agents through the same :class:`~worldloom.runtime.simulator.Simulator` (``SimConfig.memory``).
The policies are in :mod:`worldloom.memory.policies`: ``window``, ``sink``, ``place``, ``place_first``,
``place_early``, ``similar``, ``similar_aligned``, ``successor``; place memories read their camera pose from :mod:`worldloom.memory.odometry`
(the actions, through kinematics fit on the training data) where the checkpoint has one.
"""

from .base import Entry, Geometry, MemoryKV, MemoryPolicy, Selection
from .policies import MEMORIES, AlignedSimilarMemory, EarlyPlaceMemory, FirstPlaceMemory, PlaceMemory, SimilarMemory, SinkMemory, SuccessorMemory, WindowMemory, make_memory

__all__ = ["AlignedSimilarMemory", "EarlyPlaceMemory", "Entry", "FirstPlaceMemory", "Geometry", "MEMORIES", "MemoryKV", "MemoryPolicy", "PlaceMemory", "Selection", "SimilarMemory",
           "SinkMemory", "SuccessorMemory", "WindowMemory", "make_memory"]
