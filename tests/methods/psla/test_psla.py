"""PSLA, its ablation attentions, RFU, DenseFT and the paper's configurations (seed 001)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from vidbench.api import VideoInfo
from vidbench.flops import flop_counter
from vidbench.methods.common.training import sample_labelled
from vidbench.methods.psla.attention import (
    ATTENTION_KINDS,
    DensePSLA,
    LocalAttention,
    MatchTrans,
    Nonlocal,
    ProgressiveSparseLocalAttention,
    build_attention,
    dense_offsets,
    progressive_sparse_offsets,
    shifted_stack,
)
from vidbench.methods.psla.framework import (
    DenseFeatureTransforming,
    FusionWeights,
    PSLAConfig,
    PSLAFramework,
    RecursiveFeatureUpdating,
    TransformNet,
    paper_config,
)

PHI_D4 = [(0, 0)] + [
    (a, b) for s in (1, 2, 3, 4) for a in (-s, 0, s) for b in (-s, 0, s) if (a, b) != (0, 0)
]


def identity_embeddings(module: nn.Module, scale: float) -> None:
    """f and g become scale * identity, so affinities are scale^2 <x_p1, x_p2>."""
    with torch.no_grad():
        for conv in (module.f, module.g):
            eye = torch.eye(conv.out_channels, conv.in_channels)
            conv.weight.copy_(scale * eye[:, :, None, None])
            conv.bias.zero_()


def shift(source: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """target with target[y, x] = source[y + dy, x + dx] (zero outside)."""
    return shifted_stack(source, [(dy, dx)])[:, :, :, 0].permute(0, 3, 1, 2)


def test_phi_for_d4_is_the_centre_plus_8_cells_at_each_stride() -> None:
    phi = progressive_sparse_offsets(4)
    assert phi == PHI_D4 and len(phi) == 33 == 1 + 8 * 4
    assert {(-3, 3), (0, -4), (2, 2)} <= set(phi)
    assert not {(1, 2), (3, 1), (0, -5)} & set(phi)  # off the grid, or beyond d
    for s in range(1, 5):
        ring = [o for o in phi if max(abs(o[0]), abs(o[1])) == s]
        assert len(ring) == 8 and all(abs(v) in (0, s) for o in ring for v in o)
    assert len(dense_offsets(4)) == 81 and set(phi) < set(dense_offsets(4))
    assert len(progressive_sparse_offsets(1)) == 9 and len(progressive_sparse_offsets(5)) == 41
    with pytest.raises(ValueError, match="max displacement"):
        progressive_sparse_offsets(0)


@pytest.mark.parametrize("offset", [(0, 0), (1, -1), (0, 2), (-3, 3), (4, -4), (-4, 0)])
def test_psla_recovers_a_shift_inside_phi(offset: tuple[int, int]) -> None:
    torch.manual_seed(0)
    source = torch.randn(1, 32, 13, 15)
    target = shift(source, *offset)
    psla = ProgressiveSparseLocalAttention(32, 4, embed_channels=32)
    identity_embeddings(psla, 3.0)
    with torch.no_grad():
        aligned = psla(target, source)
    dy, dx = offset
    rows, cols = slice(max(0, -dy), 13 - max(0, dy)), slice(max(0, -dx), 15 - max(0, dx))
    assert torch.allclose(aligned[..., rows, cols], target[..., rows, cols], atol=1e-4)


def test_sparsity_offsets_outside_phi_are_only_reached_by_the_dense_window() -> None:
    torch.manual_seed(1)
    source = torch.randn(1, 32, 13, 15)
    target = shift(source, 1, 3)  # in the 9x9 window, not in Phi
    inner = (slice(4, 9), slice(4, 9))
    results = {}
    for module in (ProgressiveSparseLocalAttention(32, 4, 32), DensePSLA(32, 4, 32)):
        identity_embeddings(module, 3.0)
        with torch.no_grad():
            results[type(module)] = module(target, source)[0][:, inner[0], inner[1]]
    expected = target[0][:, inner[0], inner[1]]
    assert torch.allclose(results[DensePSLA], expected, atol=1e-4)
    assert (results[ProgressiveSparseLocalAttention] - expected).abs().max() > 0.5


@pytest.mark.parametrize("kind", ATTENTION_KINDS)
def test_weights_are_a_distribution_over_the_neighbourhood(kind: str) -> None:
    torch.manual_seed(2)
    module = build_attention(kind, 16, 2, embed_channels=8)
    target, source = torch.randn(2, 16, 5, 6), torch.randn(2, 16, 5, 6)
    with torch.no_grad():
        w = module.weights(module.embed_target(target), module.embed_source(source))
    positions = {"psla": 17, "dense-psla": 25, "matchtrans": 25, "nonlocal": 30}[kind]
    leading = (2, 30) if kind == "nonlocal" else (2, 5, 6)
    assert w.shape == (*leading, positions)
    assert (w >= 0).all()
    assert torch.allclose(w.sum(-1), torch.ones(leading), atol=1e-5)


def test_matchtrans_is_sum_normalised_similarity_not_softmax() -> None:
    torch.manual_seed(3)
    module = MatchTrans(8, 1, embed_channels=8)
    identity_embeddings(module, 1.0)
    target, source = torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 4)
    with torch.no_grad():
        w = module.weights(target, source)
        cosine = module.affinities(
            target / target.norm(dim=1, keepdim=True), source / source.norm(dim=1, keepdim=True)
        ).clamp(min=0)
    assert torch.allclose(w, cosine / cosine.sum(-1, keepdim=True), atol=1e-6)
    assert (w == 0).any()  # negative similarities get no weight; a softmax never gives 0


def test_matchtrans_cell_without_a_positive_similarity_keeps_its_own_feature() -> None:
    """STMN's kernel: where every similarity in the window is <= 0 the cell keeps the source's
    feature at its own position (not zero, not an average)."""
    module = MatchTrans(2, 1, similarity="features")
    target = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1).expand(1, 2, 3, 3).clone()
    source = torch.tensor([-1.0, 0.0]).view(1, 2, 1, 1).expand(1, 2, 3, 3).clone()
    source[0, 1] = torch.arange(9.0).view(3, 3)  # cos <= 0 everywhere: x component is -1
    target[0, 1] = -1.0
    with torch.no_grad():
        aligned = module(target, source)
    assert torch.equal(aligned, source)


def test_matchtrans_on_features_has_no_embeddings_and_uses_the_maps_cosine() -> None:
    torch.manual_seed(5)
    module = MatchTrans(8, 1, embed_channels=4, similarity="features")
    assert sum(p.numel() for p in module.parameters()) == 0
    target, source = torch.rand(1, 8, 4, 4), torch.rand(1, 8, 4, 4)  # non-negative, as after ReLU
    with torch.no_grad():
        w = module.weights(module.embed_target(target), module.embed_source(source))
        cosine = module.affinities(
            target / target.norm(dim=1, keepdim=True), source / source.norm(dim=1, keepdim=True)
        ).clamp(min=0)
    positive = cosine.sum(-1, keepdim=True) > 0
    assert positive.all()
    assert torch.allclose(w, cosine / cosine.sum(-1, keepdim=True), atol=1e-6)
    with pytest.raises(ValueError, match="similarity"):
        MatchTrans(8, 1, similarity="dot")


@pytest.mark.parametrize("kind", ATTENTION_KINDS)
def test_batch_and_size_independence(kind: str) -> None:
    torch.manual_seed(4)
    module = build_attention(kind, 8, 3, embed_channels=4).eval()
    target, source = torch.randn(3, 8, 10, 12), torch.randn(3, 8, 10, 12)
    with torch.no_grad():
        batched = module(target, source)
        single = torch.cat([module(target[i : i + 1], source[i : i + 1]) for i in range(3)])
        assert torch.allclose(batched, single, atol=1e-5)
        for size in ((1, 1), (2, 7), (9, 3)):
            t = torch.randn(2, 8, *size)
            assert module(t, torch.randn(2, 8, *size)).shape == (2, 8, *size)
        if isinstance(module, LocalAttention):  # output depends only on cells within d
            crop = module(target[..., 1:9, 2:11], source[..., 1:9, 2:11])
            assert torch.allclose(crop[..., 3:5, 3:6], batched[..., 4:6, 5:8], atol=1e-5)
    with pytest.raises(ValueError, match="must both be"):
        module(target, source[..., :5])


def test_gradients_reach_every_parameter_and_both_inputs() -> None:
    torch.manual_seed(5)
    framework = PSLAFramework(paper_config("c", channels=8, low_channels=6, embed_channels=4))
    high = torch.randn(2, 8, 6, 7, requires_grad=True)
    temporal = torch.randn(2, 8, 6, 7, requires_grad=True)
    low = torch.randn(2, 6, 6, 7, requires_grad=True)
    new_temporal = framework.key_frame(high, temporal)
    out = framework.non_key_frame(low, new_temporal)
    (out.square().mean() + new_temporal.square().mean()).backward()
    for name, parameter in framework.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    for tensor in (high, temporal, low):
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0


def _macs(fn: object) -> int:
    with torch.no_grad(), flop_counter() as counter:
        fn()  # type: ignore[operator]
    return counter.get_total_flops() // 2


def test_flop_counter_matches_the_hand_count_for_d4() -> None:
    b, c, e, h, w = 2, 48, 24, 7, 9
    target, source = torch.randn(b, c, h, w), torch.randn(b, c, h, w)
    cells = b * h * w
    embeddings = 2 * cells * c * e
    for kind, positions in (("psla", 33), ("dense-psla", 81), ("matchtrans", 81)):
        module = build_attention(kind, c, 4, e)
        assert _macs(lambda: module(target, source)) == embeddings + cells * positions * (e + c)
    psla = ProgressiveSparseLocalAttention(c, 4, e)
    cached = psla.embed_source(source)
    assert _macs(lambda: psla(target, source, cached)) == cells * (c * e + 33 * (e + c))
    nonlocal_ = Nonlocal(c, e)
    assert _macs(lambda: nonlocal_(target, source)) == embeddings + cells * h * w * (e + c)


def test_rfu_and_denseft_shapes_and_fusion() -> None:
    torch.manual_seed(6)
    attention = ProgressiveSparseLocalAttention(8, 2, 4)
    rfu = RecursiveFeatureUpdating(attention, FusionWeights(8))
    high, temporal = torch.randn(2, 8, 5, 6), torch.randn(2, 8, 5, 6)
    with torch.no_grad():
        assert rfu(high, None) is high  # first key frame: F_t starts as F_h
        assert rfu(high, temporal).shape == (2, 8, 5, 6)
        fusion = FusionWeights(8)
        weights = fusion.weights(high, temporal)
        assert weights.shape == (2, 2, 5, 6)
        assert torch.allclose(weights.sum(1), torch.ones(2, 5, 6), atol=1e-6)
        assert torch.allclose(fusion(high, high), high, atol=1e-6)  # a convex combination
        dense = DenseFeatureTransforming(TransformNet(6, 8), attention, FusionWeights(8))
        assert dense(torch.randn(2, 6, 5, 6), temporal).shape == (2, 8, 5, 6)


def test_configurations_build_the_modules_of_tables_2_and_5() -> None:
    small = {"channels": 8, "low_channels": 6, "embed_channels": 4}
    a, b, c = (PSLAFramework(paper_config(n, **small)) for n in "abc")
    assert a.config.variant == "S" and c.config.variant == "F" and b.config.variant is None
    assert set(a.components()) == {"transform", "attention"}
    assert set(b.components()) == {"transform", "attention", "update_net"}
    assert set(c.components()) == {"transform", "attention", "update_net", "quality_net"}
    assert a.rfu is None and a.dense.quality_net is None and b.dense.quality_net is None
    assert c.rfu is not None and c.rfu.attention is c.dense.attention
    separate = PSLAFramework(paper_config("c", share_attention=False, **small))
    assert "rfu_attention" in separate.components()
    expected = {
        "psla": ProgressiveSparseLocalAttention,
        "dense-psla": DensePSLA,
        "matchtrans": MatchTrans,
        "nonlocal": Nonlocal,
    }
    for kind, cls in expected.items():
        simple = PSLAFramework(paper_config(f"{kind} S", **small))
        full = PSLAFramework(paper_config(f"{kind} F", **small))
        assert type(simple.dense.attention) is cls and simple.rfu is None
        assert full.rfu is not None and full.dense.quality_net is not None
    high, low = torch.randn(1, 8, 4, 5), torch.randn(1, 6, 4, 5)
    with torch.no_grad():
        assert a.key_frame(high, torch.randn(1, 8, 4, 5)) is high  # (a): F_t is the key feature
        assert c.non_key_frame(low, c.key_frame(high)).shape == (1, 8, 4, 5)
    with pytest.raises(ValueError, match="implies rfu=True"):
        PSLAConfig(variant="F", rfu=False)
    with pytest.raises(ValueError, match="kind"):
        PSLAConfig(kind="flow")
    with pytest.raises(ValueError, match="unknown PSLA configuration"):
        paper_config("d")


def _conv(cin: int, cout: int, k: int) -> int:
    return cin * cout * k * k + cout


def test_parameter_counts_at_paper_scale() -> None:
    counts = {
        name: sum(p.numel() for p in module.parameters())
        for name, module in PSLAFramework(paper_config("c")).components().items()
    }
    assert counts == {
        "transform": _conv(1024, 64, 1) + _conv(64, 256, 3) + _conv(256, 1024, 3),
        "attention": 2 * _conv(1024, 256, 1),
        "update_net": _conv(2048, 256, 1) + _conv(256, 16, 3) + _conv(16, 2, 3),
        "quality_net": _conv(2048, 256, 1) + _conv(256, 16, 3) + _conv(16, 2, 3),
    }
    totals = {n: sum(p.numel() for p in PSLAFramework(paper_config(n)).parameters()) for n in "abc"}
    print(f"\nPSLA parameters at C=1024: {counts}; totals (a,b,c): {totals}")
    print("paper: (a) 62.7 M - R-FCN 59.6 M = 3.1 M; (c) 63.7 M - 59.6 M = 4.1 M")
    assert totals["c"] == sum(counts.values())


def test_shifted_stack_reads_the_source_at_the_offset_with_zero_outside() -> None:
    grid = torch.arange(1.0, 21.0).view(1, 1, 4, 5)
    stack = shifted_stack(grid, [(1, 2), (-1, 0)])  # (1, 4, 5, 2, 1)
    assert stack.shape == (1, 4, 5, 2, 1)
    assert stack[0, 0, 0, 0, 0] == grid[0, 0, 1, 2] and stack[0, 2, 1, 1, 0] == grid[0, 0, 1, 1]
    assert stack[0, 3, 0, 0, 0] == 0 and stack[0, 0, 4, 1, 0] == 0  # beyond the bottom / top


def test_offsets_outside_the_map_get_no_weight() -> None:
    from vidbench.methods.psla.attention import ProgressiveSparseLocalAttention, inside_map

    torch.manual_seed(0)
    attention = ProgressiveSparseLocalAttention(8, 4, 4)
    with torch.no_grad():
        attention.f.bias.fill_(-5.0)  # real affinities strongly negative: padding would win
        attention.g.bias.fill_(5.0)
        source = torch.rand(1, 8, 5, 6) + 1
        weights = attention.weights(attention.embed_target(source), attention.embed_source(source))
        out = attention(source, source)
    outside = ~inside_map(5, 6, attention.offsets)
    assert weights[0][outside].abs().max() == 0
    assert torch.allclose(weights.sum(-1), torch.ones(1, 5, 6))
    assert out.min() > 0.9  # a convex combination of real cells, never the zero padding


def test_method_options_reach_the_framework_configuration() -> None:
    from vidbench.methods.psla.framework import PSLAOptions

    options = PSLAOptions(setting="b", d=3, share_attention=False, joint="task")
    config = options.psla_config(channels=8, low_channels=6)
    assert (config.rfu, config.denseft, config.d, config.share_attention) == (True, False, 3, False)
    framework = PSLAFramework(config)
    assert framework.rfu is not None and framework.rfu.attention is not framework.dense.attention
    assert options.recipe_key()["joint"] == "task" and "joint_lr" in options.recipe_key()
    assert "joint_lr" not in PSLAOptions().recipe_key()  # frozen: the lr plays no part
    with pytest.raises(ValueError, match="settings a, b, c are PSLA's"):
        PSLAOptions(attention="matchtrans", setting="b")


def test_training_draws_videos_and_stills_one_to_one() -> None:
    """Sec. 4.1: each training sample comes from VID or DET at 1 : 1, however many more DET
    stills there are; without stills every source is drawn uniformly."""
    def source(name: str, frames: int) -> SimpleNamespace:
        return SimpleNamespace(info=VideoInfo(name, 8, 8, frames, 25.0), label_indices=(0,))

    sources = [source(f"v{i}", 30) for i in range(2)] + [source(f"s{i}", 1) for i in range(50)]
    rng = np.random.default_rng(0)
    drawn = [sample_labelled(rng, sources)[0].info.num_frames for _ in range(2000)]
    assert 0.45 < np.mean([frames == 1 for frames in drawn]) < 0.55
    only_videos = [sample_labelled(rng, sources[:2])[0].info.name for _ in range(400)]
    assert {"v0", "v1"} == set(only_videos)
