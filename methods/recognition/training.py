"""Training of AdaFocus / AdaFocus+ (sec. 3.2-3.3), AdaFocus-TSM (sec. 4.2) and the supervised
baselines, as library functions on tensors.

Batches are ``(video (B, T, 3, H, W) float in [0, 1], labels (B,) int64)``; ``batches`` is an
iterable that can be iterated once per epoch (a list) or a callable returning a fresh iterator.
Every function is deterministic given ``options.seed``: sampling uses a torch.Generator and the
global RNG (dropout) is seeded inside ``torch.random.fork_rng``, so the caller's RNG is untouched.

Stage I (Eq. 5): f_G, f_L, f_C trained with cross-entropy averaged over every step's logits,
patches drawn uniformly from the candidates (or by the fixed policy of Table 5).
Stage II: PPO on pi (and pi' for AdaFocus+), backbones and f_C frozen in eval mode. Per step t,
with the chosen patch a_t and f_C's state h_{t-1} from the actual trajectory:
  eq7:        r_t = p_ty(a_t | h_{t-1}) - p_ty(u_t | h_{t-1}), u_t one uniform candidate (Eq. 7,
              one Monte-Carlo sample, f_C's state not advanced by u_t);
  confidence: r_t = p_ty(a_t | h_{t-1});
  increments: r_t = p_ty(a_t | h_{t-1}) - p_{t-1,y} (p_0 = 0, the public code's ``prev``).
AdaFocus+ (Eq. 10): r'_t = b_t * (p_ty(e_L) - p_ty(0) - lambda P^2); the trajectory advances
with b_t e_L (Eq. 9); pi's reward is computed as above with f_L run (whether or not b_t = 1).
PPO (public code, docs/reference-notes.md §6a): discounted returns R_t = r_t + gamma R_{t+1}
(gamma 0.7) normalised over the batch, advantage R - V (critic head, detached), loss
-min(ratio A, clip(ratio, 1 +- 0.2) A) + 0.5 MSE(V, R) - 0.01 entropy, Adam 3e-4, K epochs
over each batch's episode: K = ``PPO_EPOCHS`` = 3 by default (the paper solves Eq. 6 with
"the off-the-shelf PPO" [34], whose Atari setting, the discrete-action one, runs 3 epochs per
batch, so the clip acts from the second epoch on); K = 1 is the public code's (ratio = 1,
the clip never acts: a plain actor-critic step).
Stage III: f_L and f_C (or f_C only) fine-tuned with Eq. 5, pi fixed; patches are sampled
from pi as sec. 3.2 says (``sample_finetune``, the default) or taken at its argmax as the
public code does (``training=False`` in its stage 3); AdaFocus+ samples b_t from pi'.
AdaFocus-TSM (sec. 4.2: "the architecture of the policy network and the training algorithm
remain unchanged"): pi runs over the 8 glance frames and its last step gives a categorical
distribution over the candidate grid (one patch per video), trained by the same PPO with one
step per video; ``location_policy="gaussian"`` is the public Sth-Sth code's continuous
Gaussian location instead.
Learning rate: constant (the default), or ``lr_schedule="cosine"``: a linear warm-up over the
first 10 % of a stage's steps, then a cosine decay to 0 (needs ``steps_per_epoch``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm
from vidbench.methods.recognition.adafocus import AdaFocus, RecurrentPolicy
from vidbench.methods.recognition.policies import (
    GAUSSIAN_STD,
    PolicyKind,
    choose_fixed,
    fixed_locations,
)
from vidbench.methods.recognition.tsm import LOCATION_STD, AdaFocusTSM

RewardKind = Literal["eq7", "confidence", "increments"]
ScheduleKind = Literal["constant", "cosine"]
PPO_EPOCHS = 3  # the off-the-shelf PPO's K (Schulman et al. 2017, Atari); the public code: 1
WARMUP_SHARE = 0.1
Batch = tuple[torch.Tensor, torch.Tensor]
Batches = Iterable[Batch] | Callable[[], Iterable[Batch]]
Logs = dict[str, list[float]]
Stage = Callable[[nn.Module, Batches, "TrainOptions"], tuple[nn.Module, Logs]]
NORMALISE_EPS = 1e-5


@dataclass(frozen=True)
class PPOOptions:
    """PPO settings of the public AdaFocus code (docs/reference-notes.md §6a), except ``epochs``
    (K updates per batch): 3, the off-the-shelf PPO's, where the public code runs 1."""

    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.999)
    gamma: float = 0.7
    clip: float = 0.2
    epochs: int = PPO_EPOCHS
    value_coef: float = 0.5
    entropy_coef: float = 0.01
    normalise_returns: bool = True


@dataclass(frozen=True)
class TrainOptions:
    """Epochs per stage (I, II, III; ``epochs`` for ``train_supervised``), Adam settings (stage
    III uses ``lr * finetune_lr_scale``), Table 5 variants (``policy_kind``, ``reward``), lambda
    of Eq. 10 (``skip_lambda``), stage III on f_C only (``finetune_local=False``), stage III's
    patches sampled from pi (``sample_finetune``, sec. 3.2) or at its argmax, and the learning
    rate schedule (``lr_schedule``; cosine needs ``steps_per_epoch``)."""

    stage_epochs: tuple[int, int, int] = (1, 1, 1)
    epochs: int = 1
    max_steps: int | None = None
    lr: float = 1e-3
    finetune_lr_scale: float = 0.1
    weight_decay: float = 0.0
    grad_clip: float = 20.0
    device: str = "cpu"
    seed: int = 1007
    policy_kind: PolicyKind = "learned"
    reward: RewardKind = "eq7"
    gaussian_std: float = GAUSSIAN_STD
    skip_lambda: float = 1e-6
    glance_aux: float = 0.0
    finetune_local: bool = True
    sample_finetune: bool = True
    progress: bool = True
    lr_schedule: ScheduleKind = "constant"
    steps_per_epoch: int = 0
    ppo: PPOOptions = field(default_factory=PPOOptions)

    def __post_init__(self) -> None:
        if self.lr_schedule not in get_args(ScheduleKind):
            raise ValueError(f"adafocus: lr_schedule {self.lr_schedule!r} is unknown")
        if self.lr_schedule == "cosine" and self.steps_per_epoch < 1:
            raise ValueError("adafocus: lr_schedule='cosine' needs steps_per_epoch >= 1")
        if self.ppo.epochs < 1:
            raise ValueError(f"adafocus: PPO needs at least one epoch, got {self.ppo.epochs}")
        if self.policy_kind not in get_args(PolicyKind):
            raise ValueError(f"adafocus: policy_kind {self.policy_kind!r} is unknown")
        if self.reward not in get_args(RewardKind):
            raise ValueError(f"adafocus: reward {self.reward!r} is unknown")


@contextlib.contextmanager
def _seeded(options: TrainOptions, stage: int) -> Iterator[torch.Generator]:
    """Seed the global RNG (dropout) for one stage without leaking it; yield the sampler."""
    devices = [torch.device(options.device)] if options.device.startswith("cuda") else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(options.seed + stage)
        yield torch.Generator().manual_seed(options.seed + 1000 * stage)


def _epochs(
    batches: Batches, epochs: int, options: TrainOptions, desc: str
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """(epoch index, video, labels) on the device over ``epochs`` passes, with a progress bar."""
    for epoch in range(epochs):
        source = batches() if callable(batches) else batches
        hidden = None if options.progress else True  # None: hidden off a terminal
        bar = tqdm(source, desc=f"{desc} {epoch + 1}/{epochs}", disable=hidden)
        for index, (video, labels) in enumerate(bar):
            if options.max_steps is not None and index >= options.max_steps:
                break
            yield epoch, video.to(options.device), labels.to(options.device)
        bar.close()


def _set_trainable(modules: Iterable[nn.Module | None], trainable: bool) -> None:
    for module in modules:
        if module is not None:
            module.requires_grad_(trainable)


def _optimise(
    loss: torch.Tensor,
    optimiser: torch.optim.Optimizer,
    clip: float,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> None:
    optimiser.zero_grad()
    loss.backward()
    params = [p for group in optimiser.param_groups for p in group["params"]]
    nn.utils.clip_grad_norm_(params, clip)
    optimiser.step()
    if scheduler is not None:
        scheduler.step()


def lr_factor(step: int, total: int) -> float:
    """Warm-up + cosine multiplier of the learning rate at ``step`` of ``total`` steps."""
    warmup = max(1, round(WARMUP_SHARE * total))
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _scheduler(
    optimiser: torch.optim.Optimizer, options: TrainOptions, epochs: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The stage's schedule over ``epochs`` epochs (None for a constant rate)."""
    if options.lr_schedule == "constant":
        return None
    steps = options.steps_per_epoch * epochs
    if options.max_steps is not None:
        steps = min(options.max_steps, options.steps_per_epoch) * epochs
    return torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: lr_factor(step, steps))


def _adam(
    params: Iterable[nn.Parameter], options: TrainOptions, scale: float = 1.0
) -> torch.optim.Optimizer:
    trainable = [p for p in params if p.requires_grad]
    return torch.optim.Adam(
        trainable, lr=options.lr * scale, weight_decay=options.weight_decay
    )


def step_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Eq. 5: cross-entropy averaged over the steps of (B, T, K) logits (or plain on (B, K))."""
    if logits.dim() == 2:
        return F.cross_entropy(logits, labels)
    steps = logits.shape[1]
    return F.cross_entropy(logits.flatten(0, 1), labels.repeat_interleave(steps))


class _EpochMeter:
    """Means of named scalars per epoch, for the logs."""

    def __init__(self) -> None:
        self.values: dict[str, list[list[float]]] = {}

    def add(self, epoch: int, **scalars: float) -> None:
        for name, value in scalars.items():
            rows = self.values.setdefault(name, [])
            while len(rows) <= epoch:
                rows.append([])
            rows[epoch].append(value)

    def logs(self) -> Logs:
        return {
            name: [sum(row) / len(row) for row in rows if row]
            for name, rows in self.values.items()
        }


def fixed_or_random_actions(
    kind: PolicyKind, batch: int, steps: int, num_candidates: int, generator: torch.Generator,
    std: float = GAUSSIAN_STD,
) -> torch.Tensor:
    """Stage I / fixed-policy patches (B, T): uniform for ``learned`` (Eq. 5), else the policy."""
    fixed = "random" if kind == "learned" else kind
    return choose_fixed(fixed, batch, num_candidates, generator, steps, std)


def video_logits(
    model: AdaFocus,
    video: torch.Tensor,
    maps: torch.Tensor,
    actions: torch.Tensor,
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """f_L on the chosen patches and f_C over the steps, given f_G's maps: logits (B, T, K)."""
    batch, steps = video.shape[:2]
    if keep is None:
        keep = torch.ones(batch, steps, dtype=torch.bool, device=video.device)
    local = model.local_features(
        video.flatten(0, 1), actions.to(video.device).flatten(), keep.flatten()
    ).unflatten(0, (batch, steps))
    hidden, logits = None, []
    for t in range(steps):
        step_logits, hidden = model.classify_step(maps[:, t], local[:, t], hidden)
        logits.append(step_logits)
    return torch.stack(logits, dim=1)


def train_warmup(
    model: AdaFocus, batches: Batches, options: TrainOptions
) -> tuple[AdaFocus, Logs]:
    """Stage I (Eq. 5): f_G, f_L, f_C on random patches (or the fixed policy's), pi left out;
    ``glance_aux`` > 0 adds a temporary linear head on pooled e_G (the public code's separate
    glancer fine-tuning), so that f_G learns even without e_G reuse."""
    model.to(options.device).train()
    _set_trainable([model], True)
    _set_trainable([model.policy, model.keep_policy], False)
    meter = _EpochMeter()
    with _seeded(options, 1) as generator:
        head = nn.Linear(model.policy.squeeze.in_channels, model.config.num_classes)
        head.to(options.device)
        params = [*model.parameters(), *(head.parameters() if options.glance_aux > 0 else [])]
        optimiser = _adam(params, options)
        scheduler = _scheduler(optimiser, options, options.stage_epochs[0])
        for epoch, video, labels in _epochs(batches, options.stage_epochs[0], options, "stage I"):
            batch, steps = video.shape[:2]
            actions = fixed_or_random_actions(
                options.policy_kind, batch, steps, model.config.num_candidates, generator,
                options.gaussian_std,
            )
            maps = model.glance(video)
            loss = step_cross_entropy(video_logits(model, video, maps, actions), labels)
            if options.glance_aux > 0:
                glance_logits = head(maps.mean(dim=(3, 4)))
                loss = loss + options.glance_aux * step_cross_entropy(glance_logits, labels)
            _optimise(loss, optimiser, options.grad_clip, scheduler)
            meter.add(epoch, loss=loss.item())
    return model, meter.logs()


@dataclass
class _Episode:
    """One batch's rollout for PPO: policy inputs, actions, old log-probs, rewards (B, T)."""

    maps: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    rewards: torch.Tensor
    keep: torch.Tensor | None = None
    keep_log_probs: torch.Tensor | None = None
    keep_rewards: torch.Tensor | None = None


def _categorical(logits: torch.Tensor) -> torch.distributions.Distribution:
    return torch.distributions.Categorical(logits=logits)


def _bernoulli(logits: torch.Tensor) -> torch.distributions.Distribution:
    return torch.distributions.Bernoulli(logits=logits.squeeze(1))


def _sample_policy(
    policy: RecurrentPolicy,
    maps: torch.Tensor,
    generator: torch.Generator,
    discrete: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Roll a recurrent policy over the maps (B, T, ...) sampling with ``generator``: actions
    and their log-probabilities (B, T). Discrete = candidate index, else keep bit (pi')."""
    hidden, actions, log_probs = None, [], []
    for t in range(maps.shape[1]):
        logits, hidden = policy(maps[:, t], hidden)
        if discrete:
            probs = logits.softmax(dim=1).cpu()
            action = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            dist = _categorical(logits)
        else:
            dist = _bernoulli(logits)
            action = torch.bernoulli(dist.probs.cpu(), generator=generator)
        action = action.to(maps.device)
        actions.append(action)
        log_probs.append(dist.log_prob(action))
    return torch.stack(actions, dim=1), torch.stack(log_probs, dim=1)


def _confidence(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Softmax probability on the true class (B,)."""
    return logits.softmax(dim=1).gather(1, labels[:, None]).squeeze(1)


def _rewards(
    model: AdaFocus,
    video: torch.Tensor,
    labels: torch.Tensor,
    maps: torch.Tensor,
    actions: torch.Tensor,
    keep: torch.Tensor | None,
    generator: torch.Generator,
    options: TrainOptions,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """pi's rewards (B, T) of the chosen kind and, with ``keep``, pi''s rewards of Eq. 10."""
    batch, steps = video.shape[:2]
    ones = torch.ones(batch * steps, dtype=torch.bool, device=video.device)
    frames = video.flatten(0, 1)
    chosen = model.local_features(frames, actions.flatten(), ones).unflatten(0, (batch, steps))
    if options.reward == "eq7":
        baseline_actions = torch.randint(
            model.config.num_candidates, (batch, steps), generator=generator
        ).to(video.device)
        baseline = model.local_features(frames, baseline_actions.flatten(), ones)
        baseline = baseline.unflatten(0, (batch, steps))
    penalty = options.skip_lambda * model.config.patch**2
    hidden, previous = None, torch.zeros(batch, device=video.device)
    rewards, keep_rewards = [], []
    for t in range(steps):
        with_patch, hidden_patch = model.classify_step(maps[:, t], chosen[:, t], hidden)
        confidence = _confidence(with_patch, labels)
        if options.reward == "eq7":
            random_logits, _ = model.classify_step(maps[:, t], baseline[:, t], hidden)
            rewards.append(confidence - _confidence(random_logits, labels))
        elif options.reward == "confidence":
            rewards.append(confidence)
        else:
            rewards.append(confidence - previous)
        if keep is not None:
            skipped, hidden_skip = model.classify_step(
                maps[:, t], torch.zeros_like(chosen[:, t]), hidden
            )
            skip_confidence = _confidence(skipped, labels)
            kept = keep[:, t].bool()
            keep_rewards.append(kept.float() * (confidence - skip_confidence - penalty))
            hidden_patch = torch.where(kept[:, None], hidden_patch, hidden_skip)
            confidence = torch.where(kept, confidence, skip_confidence)
        hidden, previous = hidden_patch, confidence
    keep_out = torch.stack(keep_rewards, dim=1) if keep is not None else None
    return torch.stack(rewards, dim=1), keep_out


def discounted_returns(rewards: torch.Tensor, gamma: float, normalise: bool) -> torch.Tensor:
    """Eq. 6 returns R_t = r_t + gamma R_{t+1} over (B, T), optionally normalised per batch."""
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        running = rewards[:, t] + gamma * running
        returns[:, t] = running
    if normalise and returns.numel() > 1:
        returns = (returns - returns.mean()) / (returns.std() + NORMALISE_EPS)
    return returns


def ppo_loss(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    values: torch.Tensor,
    returns: torch.Tensor,
    entropy: torch.Tensor,
    ppo: PPOOptions,
) -> torch.Tensor:
    """Clipped-surrogate PPO loss with the critic's MSE and an entropy bonus (all same shape)."""
    ratio = torch.exp(log_probs - old_log_probs.detach())
    advantage = returns - values.detach()
    clipped = ratio.clamp(1.0 - ppo.clip, 1.0 + ppo.clip)
    surrogate = -torch.min(ratio * advantage, clipped * advantage)
    value_loss = F.mse_loss(values, returns)
    return surrogate.mean() + ppo.value_coef * value_loss - ppo.entropy_coef * entropy.mean()


def _evaluate_policy(
    policy: RecurrentPolicy, maps: torch.Tensor, actions: torch.Tensor, discrete: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Re-run a recurrent policy over the maps with gradients: log-probs of the taken actions,
    critic values and entropies, each (B, T)."""
    hidden, log_probs, values, entropies = None, [], [], []
    for t in range(maps.shape[1]):
        logits, hidden = policy(maps[:, t], hidden)
        dist = _categorical(logits) if discrete else _bernoulli(logits)
        log_probs.append(dist.log_prob(actions[:, t]))
        entropies.append(dist.entropy())
        values.append(policy.value(hidden))
    return torch.stack(log_probs, 1), torch.stack(values, 1), torch.stack(entropies, 1)


def _policy_loss(
    policy: RecurrentPolicy,
    maps: torch.Tensor,
    actions: torch.Tensor,
    old_log_probs: torch.Tensor,
    rewards: torch.Tensor,
    discrete: bool,
    ppo: PPOOptions,
) -> torch.Tensor:
    log_probs, values, entropy = _evaluate_policy(policy, maps, actions, discrete)
    returns = discounted_returns(rewards, ppo.gamma, ppo.normalise_returns)
    return ppo_loss(log_probs, old_log_probs, values, returns, entropy, ppo)


def _rollout(
    model: AdaFocus,
    video: torch.Tensor,
    labels: torch.Tensor,
    generator: torch.Generator,
    options: TrainOptions,
) -> _Episode:
    """Sample pi (and pi') on one batch with frozen backbones and compute the rewards."""
    with torch.no_grad():
        maps = model.glance(video)
        actions, log_probs = _sample_policy(model.policy, maps, generator, discrete=True)
        keep = keep_log_probs = None
        if model.keep_policy is not None:
            keep, keep_log_probs = _sample_policy(model.keep_policy, maps, generator, False)
        rewards, keep_rewards = _rewards(
            model, video, labels, maps, actions, keep, generator, options
        )
    return _Episode(maps, actions, log_probs, rewards, keep, keep_log_probs, keep_rewards)


def train_policy(
    model: AdaFocus, batches: Batches, options: TrainOptions
) -> tuple[AdaFocus, Logs]:
    """Stage II: PPO on pi (and pi' of AdaFocus+, Eq. 10) with f_G, f_L and f_C frozen."""
    if options.policy_kind != "learned":
        raise ValueError(f"adafocus: stage II trains pi; policy_kind={options.policy_kind!r}")
    model.to(options.device).eval()
    _set_trainable([model], False)
    policies = [p for p in (model.policy, model.keep_policy) if p is not None]
    _set_trainable(policies, True)
    params = [p for policy in policies for p in policy.parameters()]
    optimiser = torch.optim.Adam(params, lr=options.ppo.lr, betas=options.ppo.betas)
    meter = _EpochMeter()
    with _seeded(options, 2) as generator:
        for epoch, video, labels in _epochs(
            batches, options.stage_epochs[1], options, "stage II"
        ):
            episode = _rollout(model, video, labels, generator, options)
            for _ in range(options.ppo.epochs):
                loss = _episode_loss(model, episode, options.ppo)
                _optimise(loss, optimiser, options.grad_clip)
            scalars = {"loss": loss.item(), "reward": episode.rewards.mean().item()}
            if episode.keep is not None:
                scalars["keep_reward"] = episode.keep_rewards.mean().item()
                scalars["kept"] = episode.keep.float().mean().item()
            meter.add(epoch, **scalars)
    _set_trainable([model], True)
    return model, meter.logs()


def _episode_loss(model: AdaFocus, episode: _Episode, ppo: PPOOptions) -> torch.Tensor:
    """PPO loss of pi plus, for AdaFocus+, that of pi'."""
    loss = _policy_loss(
        model.policy, episode.maps, episode.actions, episode.log_probs, episode.rewards, True, ppo
    )
    if model.keep_policy is not None:
        loss = loss + _policy_loss(
            model.keep_policy,
            episode.maps,
            episode.keep,
            episode.keep_log_probs,
            episode.keep_rewards,
            False,
            ppo,
        )
    return loss


def policy_actions(
    model: AdaFocus,
    maps: torch.Tensor,
    options: TrainOptions,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Patches (B, T) from pi (argmax, or sampled with ``sample_finetune``) or the fixed
    policy, and AdaFocus+'s keep mask b_t ~ Bernoulli(p^B) (None without pi')."""
    batch, steps = maps.shape[:2]
    if options.policy_kind != "learned":
        actions = fixed_or_random_actions(
            options.policy_kind, batch, steps, model.config.num_candidates, generator,
            options.gaussian_std,
        )
    elif options.sample_finetune:
        actions = _sample_policy(model.policy, maps, generator, discrete=True)[0]
    else:
        actions = _argmax_policy(model.policy, maps)
    keep = None
    if model.keep_policy is not None:
        keep = _sample_policy(model.keep_policy, maps, generator, discrete=False)[0].bool()
    return actions, keep


def _argmax_policy(policy: RecurrentPolicy, maps: torch.Tensor) -> torch.Tensor:
    hidden, actions = None, []
    for t in range(maps.shape[1]):
        logits, hidden = policy(maps[:, t], hidden)
        actions.append(logits.argmax(dim=1))
    return torch.stack(actions, dim=1)


def train_finetune(
    model: AdaFocus, batches: Batches, options: TrainOptions
) -> tuple[AdaFocus, Logs]:
    """Stage III (Eq. 5 with pi fixed): fine-tune f_L and f_C, or f_C only."""
    model.to(options.device).train()
    _set_trainable([model], False)
    model.global_cnn.eval()
    _set_trainable([model.classifier_gru, model.fc], True)
    if options.finetune_local:
        _set_trainable([model.local_cnn], True)
    else:
        model.local_cnn.eval()
    optimiser = _adam(model.parameters(), options, options.finetune_lr_scale)
    scheduler = _scheduler(optimiser, options, options.stage_epochs[2])
    meter = _EpochMeter()
    with _seeded(options, 3) as generator:
        for epoch, video, labels in _epochs(
            batches, options.stage_epochs[2], options, "stage III"
        ):
            with torch.no_grad():
                maps = model.glance(video)
                actions, keep = policy_actions(model, maps, options, generator)
            logits = video_logits(model, video, maps, actions, keep)
            loss = step_cross_entropy(logits, labels)
            _optimise(loss, optimiser, options.grad_clip, scheduler)
            meter.add(epoch, loss=loss.item())
    _set_trainable([model], True)
    return model, meter.logs()


# TrainOptions fields that only stages II and III read: stage I's result does not depend on them
LATER_STAGE_FIELDS = (
    "epochs", "finetune_lr_scale", "reward", "skip_lambda", "finetune_local", "sample_finetune",
    "progress", "ppo",
)


def warmup_key(options: TrainOptions) -> dict[str, object]:
    """What stage I's result depends on among ``options``: every field but those only later
    stages read, its own epochs, and the learned policy's stage I patches as the uniform ones
    they are (so AdaFocus and its random-policy row share one stage I)."""
    fields = {k: v for k, v in asdict(options).items() if k not in LATER_STAGE_FIELDS}
    fields["stage_epochs"] = options.stage_epochs[0]
    fields["policy_kind"] = "random" if options.policy_kind == "learned" else options.policy_kind
    return fields


def train_adafocus(
    model: AdaFocus, batches: Batches, options: TrainOptions, warmup: Stage | None = None
) -> tuple[AdaFocus, dict[str, Logs]]:
    """Stages I, II (only for the learned policy) and III of sec. 3.2, in order; ``warmup``
    replaces stage I (e.g. by one loaded from a cache keyed by ``warmup_key``)."""
    stages = (warmup or train_warmup, train_policy, train_finetune)
    return _three_stages(model, batches, options, stages)


def _three_stages(
    model: nn.Module, batches: Batches, options: TrainOptions, stages: tuple
) -> tuple[nn.Module, dict[str, Logs]]:
    """Warm-up, policy (learned policies only) and fine-tuning stages, in order."""
    warmup, policy, finetune = stages
    logs: dict[str, Logs] = {}
    model, logs["warmup"] = warmup(model, batches, options)
    if options.policy_kind == "learned":
        model, logs["policy"] = policy(model, batches, options)
    model, logs["finetune"] = finetune(model, batches, options)
    return model.eval(), logs


def frame_indices(total: int, wanted: int) -> torch.Tensor:
    """``wanted`` distinct frames of a clip of ``total`` sampled frames: the centre frame of
    each of ``wanted`` equal segments, floor((2k + 1) * total / (2 * wanted)) (TSN's rule, as the
    loaders sample; all of them when total == wanted). Fewer frames than wanted is an error:
    repeating frames would count as "more frames" in the GMACs without showing any."""
    if wanted < 1:
        raise ValueError(f"cannot take {wanted} frames of a clip")
    if total < wanted:
        raise ValueError(
            f"a clip of {total} frames cannot give {wanted} distinct frames; sample at least "
            f"{wanted} frames per video (the dataset's 'frames' option)"
        )
    return torch.tensor([(2 * k + 1) * total // (2 * wanted) for k in range(wanted)])


def split_glance_focus(
    video: torch.Tensor, glance_frames: int, focus_frames: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """AdaFocus-TSM inputs from one clip (B, T, ...): the glance frames and the focus frames,
    each the segment centres of the clip (sec. 4.2: 8 for f_G, 12 distinct ones for f_L)."""
    total = video.shape[1]
    glance = video[:, frame_indices(total, glance_frames).to(video.device)]
    return glance, video[:, frame_indices(total, focus_frames).to(video.device)]


def _tsm_inputs(model: AdaFocusTSM, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return split_glance_focus(video, model.config.glance_frames, model.config.focus_frames)


def _tsm_random_location(
    model: AdaFocusTSM, kind: PolicyKind, batch: int, generator: torch.Generator, std: float
) -> torch.Tensor:
    """Stage I / fixed-policy locations (B, 2): a uniform candidate (categorical pi; the
    paper's RandomCrop over the candidates) or a uniform point (Gaussian pi) for ``learned``,
    else the fixed policy's continuous location."""
    if kind == "learned" and model.categorical:
        index = torch.randint(model.config.num_candidates, (batch,), generator=generator)
        return model.candidate_location(index).cpu()
    fixed = "random" if kind == "learned" else kind
    return fixed_locations(fixed, (batch,), generator, std)


def train_tsm_warmup(
    model: AdaFocusTSM, batches: Batches, options: TrainOptions
) -> tuple[AdaFocusTSM, Logs]:
    """AdaFocus-TSM supervised stage: glance CNN, focus CNN and classifier on one random
    location per video (a uniform candidate, a uniform point for the Gaussian pi, or the
    fixed policy's)."""
    model.to(options.device).train()
    _set_trainable([model], True)
    _set_trainable([model.policy], False)
    optimiser = _adam(model.parameters(), options)
    scheduler = _scheduler(optimiser, options, options.stage_epochs[0])
    meter = _EpochMeter()
    with _seeded(options, 1) as generator:
        for epoch, video, labels in _epochs(
            batches, options.stage_epochs[0], options, "TSM stage I"
        ):
            glance, focus = _tsm_inputs(model, video)
            location = _tsm_random_location(
                model, options.policy_kind, video.shape[0], generator, options.gaussian_std
            )
            logits = model(glance, focus, location=location.to(video.device))["logits"]
            loss = F.cross_entropy(logits, labels)
            _optimise(loss, optimiser, options.grad_clip, scheduler)
            meter.add(epoch, loss=loss.item())
    return model, meter.logs()


def _tsm_reward(
    model: AdaFocusTSM,
    focus: torch.Tensor,
    glance_features: torch.Tensor,
    location: torch.Tensor,
    labels: torch.Tensor,
    generator: torch.Generator,
    reward: RewardKind,
) -> torch.Tensor:
    """One-step reward (B,): confidence at the chosen location, minus that at one uniform
    random location (a uniform candidate for the categorical pi) for ``eq7``."""
    confidence = _confidence(model.focus(focus, location, glance_features), labels)
    if reward == "confidence":
        return confidence
    if reward != "eq7":
        raise ValueError("adafocus-tsm: one location per video has no 'increments' reward")
    if model.categorical:
        index = torch.randint(model.config.num_candidates, location.shape[:1], generator=generator)
        random_location = model.candidate_location(index)
    else:
        random_location = torch.rand(location.shape, generator=generator)
    random_location = random_location.to(location.device)
    return confidence - _confidence(model.focus(focus, random_location, glance_features), labels)


def _tsm_distribution(model: AdaFocusTSM, output: torch.Tensor) -> torch.distributions.Distribution:
    """pi's distribution from its last actor output: categorical over the candidates, or the
    Gaussian around the sigmoid mean (std ``LOCATION_STD``, independent axes)."""
    if model.categorical:
        return _categorical(output)
    mean = torch.sigmoid(output)
    return torch.distributions.Independent(
        torch.distributions.Normal(mean, torch.full_like(mean, LOCATION_STD)), 1
    )


def _tsm_sample(
    model: AdaFocusTSM, output: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """An action drawn from pi with ``generator`` (candidate index, or raw Gaussian location)
    and the location (B, 2) it crops at (the Gaussian's clipped to [0, 1])."""
    if model.categorical:
        probs = output.softmax(dim=1).cpu()
        action = torch.multinomial(probs, 1, generator=generator).squeeze(1).to(output.device)
        return action, model.candidate_location(action)
    mean = torch.sigmoid(output)
    noise = torch.randn(mean.shape, generator=generator).to(mean.device)
    action = mean + LOCATION_STD * noise
    return action, action.clamp(0.0, 1.0)


def train_tsm_policy(
    model: AdaFocusTSM, batches: Batches, options: TrainOptions
) -> tuple[AdaFocusTSM, Logs]:
    """AdaFocus-TSM policy stage: the same PPO as AdaFocus with one step per video (a
    candidate drawn from pi's categorical distribution, or a Gaussian location), backbones
    and classifier frozen."""
    if options.policy_kind != "learned":
        raise ValueError(f"adafocus-tsm: policy stage with policy_kind={options.policy_kind!r}")
    model.to(options.device).eval()
    _set_trainable([model], False)
    _set_trainable([model.policy], True)
    optimiser = torch.optim.Adam(
        model.policy.parameters(), lr=options.ppo.lr, betas=options.ppo.betas
    )
    meter = _EpochMeter()
    with _seeded(options, 2) as generator:
        for epoch, video, labels in _epochs(
            batches, options.stage_epochs[1], options, "TSM stage II"
        ):
            glance, focus = _tsm_inputs(model, video)
            with torch.no_grad():
                maps = model.glance_maps(glance)
                output, _ = model.policy_output(maps)
                action, location = _tsm_sample(model, output, generator)
                old_log_probs = _tsm_distribution(model, output).log_prob(action)
                rewards = _tsm_reward(
                    model, focus, maps.mean(dim=(1, 3, 4)), location, labels,
                    generator, options.reward,
                )
            returns = discounted_returns(rewards[:, None], 0.0, options.ppo.normalise_returns)
            for _ in range(options.ppo.epochs):
                output, hidden = model.policy_output(maps)
                dist = _tsm_distribution(model, output)
                loss = ppo_loss(
                    dist.log_prob(action),
                    old_log_probs,
                    model.policy.value(hidden),
                    returns[:, 0],
                    dist.entropy(),
                    options.ppo,
                )
                _optimise(loss, optimiser, options.grad_clip)
            meter.add(epoch, loss=loss.item(), reward=rewards.mean().item())
    _set_trainable([model], True)
    return model, meter.logs()


def train_tsm_finetune(
    model: AdaFocusTSM, batches: Batches, options: TrainOptions
) -> tuple[AdaFocusTSM, Logs]:
    """AdaFocus-TSM last stage: classifier (and focus CNN) with pi fixed, its location sampled
    (``sample_finetune``, sec. 3.2) or its test-time choice."""
    model.to(options.device).train()
    _set_trainable([model], False)
    model.glance.eval()
    _set_trainable([model.fc], True)
    if options.finetune_local:
        _set_trainable([model.backbone], True)
    else:
        model.backbone.eval()
    optimiser = _adam(model.parameters(), options, options.finetune_lr_scale)
    scheduler = _scheduler(optimiser, options, options.stage_epochs[2])
    meter = _EpochMeter()
    with _seeded(options, 3) as generator:
        for epoch, video, labels in _epochs(
            batches, options.stage_epochs[2], options, "TSM stage III"
        ):
            glance, focus = _tsm_inputs(model, video)
            with torch.no_grad():
                maps = model.glance_maps(glance)
                location = _tsm_location(model, maps, options, generator)
            logits = model.focus(focus, location, maps.mean(dim=(1, 3, 4)))
            loss = F.cross_entropy(logits, labels)
            _optimise(loss, optimiser, options.grad_clip, scheduler)
            meter.add(epoch, loss=loss.item())
    _set_trainable([model], True)
    return model, meter.logs()


def _tsm_location(
    model: AdaFocusTSM, maps: torch.Tensor, options: TrainOptions, generator: torch.Generator
) -> torch.Tensor:
    """Stage III's location (B, 2) on the maps' device: drawn from pi (``sample_finetune``),
    pi's test-time choice, or the fixed policy's."""
    if options.policy_kind == "learned":
        if options.sample_finetune:
            output, _ = model.policy_output(maps)
            return _tsm_sample(model, output, generator)[1]
        return model.policy_mean(maps)[0]
    location = fixed_locations(options.policy_kind, (maps.shape[0],), generator,
                               options.gaussian_std)
    return location.to(maps.device)


def train_adafocus_tsm(
    model: AdaFocusTSM, batches: Batches, options: TrainOptions
) -> tuple[AdaFocusTSM, dict[str, Logs]]:
    """AdaFocus-TSM: supervised stage, policy stage (learned policy only), fine-tuning."""
    stages = (train_tsm_warmup, train_tsm_policy, train_tsm_finetune)
    return _three_stages(model, batches, options, stages)


def _model_logits(model: nn.Module, video: torch.Tensor) -> torch.Tensor:
    """Logits of a supervised model on a clip resampled to its ``frames`` if it has one."""
    frames = getattr(model, "frames", None)
    if frames is not None and video.shape[1] != frames:
        video = video[:, frame_indices(video.shape[1], frames).to(video.device)]
    out = model(video)
    return out["logits"] if isinstance(out, dict) else out


def train_supervised(
    model: nn.Module, batches: Batches, options: TrainOptions
) -> tuple[nn.Module, Logs]:
    """TSM, TSM+ and the Fig. 6 baselines: cross-entropy (per step for (B, T, K) outputs)."""
    model.to(options.device).train()
    _set_trainable([model], True)
    optimiser = _adam(model.parameters(), options)
    scheduler = _scheduler(optimiser, options, options.epochs)
    meter = _EpochMeter()
    with _seeded(options, 0):
        for epoch, video, labels in _epochs(batches, options.epochs, options, "supervised"):
            loss = step_cross_entropy(_model_logits(model, video), labels)
            _optimise(loss, optimiser, options.grad_clip, scheduler)
            meter.add(epoch, loss=loss.item())
    return model.eval(), meter.logs()
