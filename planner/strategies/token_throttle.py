"""gLLM's token throttle under Poisson arrivals, as a fluid model: how many rounds a prompt takes, how many prompt
tokens wait uncomputed, how the per-micro-batch prompt budget varies, and how long a round of the pp
micro-batches lasts. Pure numpy functions over the workload's prompt lengths (planner.strategies.
throttled_pipeline wires them into latencies; planner.sim.throttled runs the same rules step by step).

Notation: W the prompt tokens not yet computed (waiting prompts and the rest of those started: what WT divides),
U the utilisation budget UT, m = min(minp, U), iterp the throttle's spreading factor, T a round (the time from
one micro-batch of a virtual engine to its next: its pass through the pp stages and any wait behind the others).
The prefill budget of a micro-batch is b(W) = min(max(W / iterp, minp), U).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from planner.strategies.base import mdl_wait_s, seeded_quantiles
from planner.strategies.numerics import bracketed_root, normal_ppf

BUDGET_POINTS = 16  # quantiles of W at which the micro-batch budget is evaluated, evenly spaced
BUDGET_PROBABILITIES = tuple((i + 0.5) / BUDGET_POINTS for i in range(BUDGET_POINTS))
ROOT_TOLERANCE = 1e-7  # W found to this share of the tokens that cap every budget (iterp U)
STABILITY_MARGIN = 1e-3  # the search for W starts where admission's utilisation is 1 / (1 + this)


@dataclass(frozen=True, slots=True)
class Regimes:
    """Where the budget of a prompt's chunks changes regime as its uncomputed tokens `left` fall (`prompt_rounds`):
    b = U above `top`, (others + left) / iterp between `bottom` and `top`, m below `bottom`; the last chunk
    takes the rest from `last` (L*) down. `decay` is -ln(1 - 1/iterp), the geometric regime's rate per round."""

    others: float
    cap: float
    floor: float
    decay: float
    last: float
    bottom: float
    top: float

    @classmethod
    def of(cls, others_tokens: float, min_prefill_tokens: float, iterp: float, cap_tokens: float) -> Regimes:
        w, u = float(others_tokens), float(cap_tokens)
        m = min(float(min_prefill_tokens), u)
        decay = -math.log1p(-1 / iterp) if iterp > 1 else math.inf
        last = min(u, max(m, w / (iterp - 1) if iterp > 1 else math.inf))  # L*
        top = max(iterp * u - w, last)
        bottom = min(max(iterp * m - w, last), top)
        return cls(others=w, cap=u, floor=m, decay=decay, last=last, bottom=bottom, top=top)

    def stretches(self, input_lens: np.ndarray) -> np.ndarray:
        """Rows U, geometric, m: the end of each regime's stretch of each prompt's way from I down to L*
        (the stretch is [row's lower bound, this])."""
        lows = np.array([[self.top], [self.bottom], [self.last]])
        highs = np.array([[math.inf], [self.top], [self.bottom]])
        ends: np.ndarray = np.clip(input_lens, lows, highs)
        return ends


def prompt_rounds(
    input_lens: np.ndarray, others_tokens: float, min_prefill_tokens: float, iterp: float, cap_tokens: float
) -> np.ndarray:
    """Rounds each prompt takes with `others_tokens` of other prompt tokens uncomputed beside it, in the fluid
    limit of the throttle. A prompt's chunks ride its virtual engine's micro-batches, one per round, as
    planner.sim.throttled schedules them; chunk = min(left, b(others + left)), left the prompt's tokens not yet
    computed. As left falls the budget passes three regimes:
        left >= iterp U - others:                   b = U                 left falls by U a round
        iterp m - others <= left < iterp U - others: b = (others + left) / iterp, so others + left shrinks by
                                                     a = 1 - 1/iterp a round: ln(ratio) / -ln(a) rounds
        left < iterp m - others:                    b = m                 left falls by m a round
    The last chunk takes the whole rest once left <= b(others + left), i.e. left <= L* = min(U, max(m, others /
    (iterp - 1))) (b grows with left at slope 1/iterp < 1, so that set is [0, L*]). Rounds = 1 + the fluid
    rounds from I down to L*, rounded up (for a lone prompt, as many as the per-micro-batch rule takes)."""
    lens = np.asarray(input_lens, dtype=float)
    r = Regimes.of(others_tokens, min_prefill_tokens, iterp, cap_tokens)
    ends = r.stretches(lens)
    fluid = (ends[0] - r.top) / r.cap + np.log((r.others + ends[1]) / (r.others + r.bottom)) / r.decay
    fluid += (ends[2] - r.last) / r.floor
    rounds: np.ndarray = 1 + np.where(lens > r.last, np.ceil(fluid - 1e-9), 0.0)
    return rounds


def prompt_token_sums(
    input_lens: np.ndarray, others_tokens: float, min_prefill_tokens: float, iterp: float, cap_tokens: float
) -> tuple[float, float]:
    """Means over the prompts of the sums, over the rounds of `prompt_rounds`, of the tokens a prompt still has
    to compute at the start of each round (tokens x rounds) and of their squares (tokens^2 x rounds): the
    integrals of left and left^2 over the fluid rounds (d round = d left / b), plus half of each chunk (each
    round counts its left end: the trapezoid rule's correction), plus the last round's remainder (L* / 2 on
    average; I for a prompt of one chunk). Per regime, with x = left:
        b = c (U or m):            integral of x = (hi^2 - lo^2) / 2c,  of x^2 = (hi^3 - lo^3) / 3c
        b = (w + x) / iterp:       integral of x dx / ((w + x) decay) = (hi - lo - w ln r) / decay,
                                   of x^2 = ((hi^2 - lo^2) / 2 - w (hi - lo) + w^2 ln r) / decay,
                                   r = (w + hi) / (w + lo)
    """
    lens = np.asarray(input_lens, dtype=float)
    n = len(lens)
    r = Regimes.of(others_tokens, min_prefill_tokens, iterp, cap_tokens)
    w = r.others
    ends = r.stretches(lens)
    squares = ends * ends
    e1, e2, e3 = (np.add.reduce(x, axis=1).tolist() for x in (ends, squares, squares * ends))
    span, sq, cube = [], [], []
    for i, low in enumerate((r.top, r.bottom, r.last)):
        span.append(e1[i] / n - low)
        sq.append(e2[i] / n - low**2)
        cube.append(e3[i] / n - low**3)
    log_ratio = float(np.add.reduce(np.log(w + ends[1]))) / n - math.log(w + r.bottom)
    area = sq[0] / (2 * r.cap) + (span[1] - w * log_ratio) / r.decay + sq[2] / (2 * r.floor)
    area_sq = cube[0] / (3 * r.cap) + (sq[1] / 2 - w * span[1] + w * w * log_ratio) / r.decay + cube[2] / (3 * r.floor)
    several = lens > r.last
    lens_sq = lens * lens
    # Several chunks: + (I - L*) / 2 trapezoid + L* / 2 remainder = I / 2, and (I^2 - L*^2) / 2 + L*^2 / 4; one: I, I^2.
    area += (float(np.add.reduce(lens)) - float(lens @ several) / 2) / n
    share = float(np.count_nonzero(several)) / n
    area_sq += (float(np.add.reduce(lens_sq)) - float(lens_sq @ several) / 2) / n - share * r.last**2 / 4
    return area, area_sq


@dataclass(frozen=True, slots=True)
class ThrottleState:
    """The throttle at one arrival rate: mean and variance of W (tokens, tokens^2), the budget a waiting
    prompt sees, the utilisation of the micro-batch budgets, and the mean wait for admission (s)."""

    mean_tokens: float
    var_tokens: float
    budget_tokens: float
    utilisation: float
    wait_s: float


def throttle_state(
    input_lens: np.ndarray,
    rate_req_s: float,
    round_s: float,
    pp_size: int,
    min_prefill_tokens: float,
    iterp: float,
    cap_tokens: float,
) -> ThrottleState | None:
    """W at Poisson arrivals of `rate_req_s` with rounds of `round_s`, or None when the budgets cannot carry the
    prompts. W solves W = R T E[sum of left] + R E[I] Wq (Little's law on uncomputed tokens: the started
    prompts', each round holding what it still has to compute, and the waiting prompts'); its variance is
    Campbell's theorem for that shot noise, R T E[sum of left^2] + R E[I^2] Wq.
    Admission: the pp micro-batches of a round offer pp b(W) prompt tokens against R E[I] T arriving, an M/G/1
    server of utilisation rho = R E[I] T / (pp b) whose service of prompt i is I_i T / (pp b); the
    Pollaczek-Khinchine mean wait R E[S^2] / (2 (1 - rho)) (M/D/1 at one length, base.mdl_wait_s).
    W - rhs(W) rises with W, so W is its one root between where admission turns stable and iterp U (below),
    found by bracketing to ROOT_TOLERANCE x iterp U tokens: a function of the arguments alone."""
    lens = np.asarray(input_lens, dtype=float)
    mean_in, mean_sq_in = float(lens.mean()), float(np.mean(lens**2))
    rate, t = rate_req_s, round_s

    @functools.cache
    def at(w: float) -> ThrottleState:
        budget = min(max(w / iterp, min_prefill_tokens), cap_tokens)
        service_s = mean_in * t / (pp_size * budget)  # the mean prompt's hold on the budgets
        rho, mdl_wait = mdl_wait_s(rate, service_s)
        wait = mdl_wait * mean_sq_in / mean_in**2 if rho < 1 else math.inf  # M/G/1: E[S^2] / E[S]^2 of M/D/1's
        area, area_sq = prompt_token_sums(lens, w, min_prefill_tokens, iterp, cap_tokens)
        mean = rate * t * area + rate * mean_in * wait
        var = rate * t * area_sq + rate * mean_sq_in * wait
        return ThrottleState(mean, var, budget, rho, wait)

    def excess(w: float) -> float:
        return w - at(w).mean_tokens

    # W - rhs(W) rises with W (larger budgets finish prompts in fewer rounds). Admission is stable once the
    # budget exceeds the mean prompt tokens of a micro-batch, R E[I] T / pp: above W = iterp x that (any W when
    # minp does). Beyond W = iterp U every budget is U and the right-hand side no longer depends on W.
    w_cap = iterp * cap_tokens
    per_micro_batch = rate * mean_in * t / pp_size
    stable_from = iterp * per_micro_batch * (1 + STABILITY_MARGIN) if per_micro_batch >= min_prefill_tokens else 0.0
    low, high = min(stable_from, w_cap), w_cap
    capped = at(w_cap)
    if not math.isfinite(capped.mean_tokens):
        return None
    if capped.mean_tokens >= w_cap:
        return capped
    return at(bracketed_root(excess, low, high, xtol=w_cap * ROOT_TOLERANCE))


def token_quantiles(state: ThrottleState, probabilities: tuple[float, ...] = BUDGET_PROBABILITIES) -> np.ndarray:
    """W (tokens) at `probabilities`, W taken as the log-normal of its mean and variance (W is a sum of prompts'
    shots, skewed by the long ones): sigma^2 = ln(1 + scv), mu = ln(mean) - sigma^2 / 2."""
    scv = state.var_tokens / state.mean_tokens**2 if state.mean_tokens > 0 else 0.0
    sigma = math.sqrt(math.log1p(scv))
    tokens: np.ndarray = state.mean_tokens * np.exp(sigma * normal_quantiles(probabilities) - sigma**2 / 2)
    return tokens


def budget_quantiles(
    state: ThrottleState,
    min_prefill_tokens: float,
    iterp: float,
    cap_tokens: float,
    probabilities: tuple[float, ...] = BUDGET_PROBABILITIES,
) -> np.ndarray:
    """The prefill budget b(W) at quantiles of W (`token_quantiles`)."""
    tokens = token_quantiles(state, probabilities)
    budgets: np.ndarray = np.minimum(np.maximum(tokens / iterp, min_prefill_tokens), cap_tokens)
    return budgets


def mean_prompt_rounds(
    input_lens: np.ndarray, state: ThrottleState, min_prefill_tokens: float, iterp: float, cap_tokens: float
) -> np.ndarray:
    """`prompt_rounds` averaged over W's quantiles (`token_quantiles`) as the other prompts' tokens: W moves
    while a prompt is in progress, so its rounds are a mean over W rather than the whole number at W's mean."""
    levels = token_quantiles(state)
    total = sum(prompt_rounds(input_lens, float(w), min_prefill_tokens, iterp, cap_tokens) for w in levels)
    rounds: np.ndarray = np.asarray(total, dtype=float) / len(levels)
    return rounds


@dataclass(frozen=True, slots=True)
class Round:
    """A round of a virtual engine (s): the mean stage step of a micro-batch and the mean step of the slowest of
    the pp in flight."""

    step_s: float
    slowest_s: float
    pp_size: int

    @property
    def mean_s(self) -> float:
        """E[p_j] + (pp - 1) E[slowest]: the slowest in flight is never faster than the mean step."""
        return self.step_s + (self.pp_size - 1) * max(self.step_s, self.slowest_s)

    def own_s(self, step_s: np.ndarray) -> np.ndarray:
        """The rounds of micro-batches whose steps are step_s: p_j + (pp - 1) max(p_j, the slowest ahead)."""
        rounds: np.ndarray = step_s + (self.pp_size - 1) * np.maximum(step_s, self.slowest_s)
        return rounds


def round_times(
    empty_s: float, carrying_s: np.ndarray, carrying_share: float, pp_size: int, levels: float = 1.0
) -> Round:
    """Mean round of a virtual engine: its micro-batch's step p_j plus (pp - 1) steps of the slowest micro-batch
    in flight ahead of it. The stages are a flow shop whose micro-batches take the same time at every stage, so
    micro-batch j entering right behind j - 1 leaves stage s at max(its own pace, j - 1's) and its pass takes
    p_j + (pp - 1) max(p over the pp in flight) (an upper bound when stage 1 idles between micro-batches).
    The budget b(W) is one for all micro-batches planned at a time (W is shared), so a micro-batch either
    carries its budget (share phi; step `carrying_s` at evenly spaced quantiles of W, ascending) or no prompt
    (`empty_s`). W moves slowly against a round: the pp micro-batches in flight see `levels` independent levels
    of it (1: one W for all), pp / levels micro-batches at each, whose slowest carries with probability
    1 - (1 - phi)^(pp / levels); the slowest in flight is the largest of `levels` draws of that, E[max] =
    sum over the quantiles of g_k (F_k^levels - F_(k-1)^levels), F_k = k / points."""
    phi = carrying_share
    mean_step = float(np.mean((1 - phi) * empty_s + phi * carrying_s))
    per_level = empty_s + (carrying_s - empty_s) * (1 - (1 - phi) ** (pp_size / levels))
    cdf = np.arange(len(carrying_s) + 1) / len(carrying_s)
    slowest = float(np.sum(per_level * np.diff(cdf**levels)))
    return Round(step_s=mean_step, slowest_s=slowest, pp_size=pp_size)


def lifetime_rate_cv(lifetimes_s: np.ndarray, others_s: np.ndarray) -> np.ndarray:
    """Per request: the coefficient of variation, over Poisson arrivals, of the mean number of requests in their
    decode phase while it is in its own (of length L = lifetimes_s; others last S = others_s, the workload's).
    Each arrival at a (relative to the request's start) adds its overlap with [0, L]; by Campbell's theorem the
    mean count's variance is R E[integral of overlap(a)^2 da] / L^2, and that integral is m^2 M - m^3 / 3 with
    m = min(S, L), M = max(S, L): the overlap is m on a plateau of length M - m (m^2 (M - m)) and ramps between
    0 and m on both sides (m^3 / 3 each). Over the mean count R E[S]: cv^2 = E[m^2 M - m^3 / 3] / (R E[S]^2 L^2).
    Returns cv sqrt(R) (the caller divides by sqrt(R)); zero for a request with no decode phase."""
    lives = np.asarray(lifetimes_s, dtype=float)[:, None]
    others = np.asarray(others_s, dtype=float)[None, :]
    short, long_ = np.minimum(lives, others), np.maximum(lives, others)
    overlap_sq = np.mean(short**2 * long_ - short**3 / 3, axis=1)
    mean_life = float(others.mean())
    with np.errstate(divide="ignore", invalid="ignore"):
        cv = np.sqrt(overlap_sq) / (mean_life * lives[:, 0])
    out: np.ndarray = np.where(lives[:, 0] > 0, cv, 0.0)
    return out


@functools.lru_cache(maxsize=16)
def normal_quantiles(probabilities: tuple[float, ...]) -> np.ndarray:
    """Standard normal quantiles (numerics.normal_ppf, computed once per set of probabilities)."""
    scores = normal_ppf(probabilities)
    scores.flags.writeable = False
    return scores


@functools.lru_cache(maxsize=64)
def normal_scores(n: int, seed: int) -> np.ndarray:
    """Standard normal quantiles at base.seeded_quantiles(n, seed): deterministic normal draws."""
    scores = normal_ppf(seeded_quantiles(n, seed))
    scores.flags.writeable = False
    return scores
