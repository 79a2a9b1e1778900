"""The kinds of circuit job and their default sizes (no Qiskit import: the scenario schema
reads them)."""

from __future__ import annotations

KINDS: tuple[str, ...] = (
    "semantic_coding",
    "multimodal_attention",
    "policy_inference",
    "federated_aggregation",
    "twin_forecast",
)

DEFAULT_SIZES: dict[str, int] = {
    "semantic_coding": 4,
    "multimodal_attention": 2,
    "policy_inference": 6,
    "federated_aggregation": 3,
    "twin_forecast": 4,
}
"""The default ``size`` of each kind: qubits of the encoder, qubits per modality register,
qubits of the actor, qubits per client register, qubits of the twin's forecaster."""
