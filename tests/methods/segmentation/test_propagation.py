"""prop-flow trains end to end as DFF does (the per-frame network with the flow network, on
its own copy); ``joint=none`` keeps the shared network frozen."""

from __future__ import annotations

import pytest
import torch
from vidbench.methods.segmentation.feature_reuse import trained_network
from vidbench.methods.segmentation.propagation import PropConfig, PropFlow, PropFlowConfig
from vidbench.registry import parse_config

SMOKE = {"train_steps": "3", "flownet_pretrain_steps": "2", "flownet_finetune_steps": "2"}


def _build(options: dict, workspace) -> PropFlow:
    return PropFlow(parse_config(PropFlowConfig, {**SMOKE, **options}, "prop-flow"), workspace)


def test_joint_training_changes_prop_flows_own_network_only(tiny_workspace) -> None:
    joint = _build({}, tiny_workspace)
    frozen = _build({"joint": "none"}, tiny_workspace)
    shared = frozen.net.state_dict()
    assert PropFlowConfig().joint == "all" and PropConfig().joint == "none"
    config = frozen.config
    as_trained = trained_network(
        tiny_workspace, config.net_config(tiny_workspace.num_classes), config.train_config()
    )
    for name, value in as_trained.state_dict().items():
        assert torch.equal(shared[name], value), name  # joint=none: the per-frame network as trained
    moved = [
        name
        for name, value in joint.net.state_dict().items()
        if value.is_floating_point() and not torch.equal(value, shared[name])
    ]
    assert any(n.startswith("features.") for n in moved) and any(n.startswith("task.") for n in moved)
    assert not any("running_" in n for n in moved)  # BatchNorm statistics stay fixed


def test_joint_needs_a_trained_flow_network() -> None:
    with pytest.raises(ValueError, match="motion=flownet"):
        PropConfig(motion="mv", joint="all")
