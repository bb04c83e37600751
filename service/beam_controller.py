"""Load-aware beam width (GR4AD's dynamic beam): B = B_base · f(pending work, capacity).

Work is counted in *units*, not requests: a request's unit count is its beam work (final
width summed over the levels, which k bounds from below) relative to a default request, and
never below one (`Engine.cost`), so a beam-256 request weighs about four default ones.
The scheduler asks for a width each time it forms a batch. Widths live on a ladder of
halvings, B_base, B_base/2, …, down to `min_width`; each rung keeps a moving average of what
one unit costs in model time at that width (measured, so the controller needs no
benchmark of the host it runs on and follows it when neighbours steal CPU). With `pending`
units queued or running, the controller picks the widest rung whose cost lets all of
them finish within `budget` (a share of the latency SLO). A rung not run for `stale_s` is
estimated afresh from the rung in use (linearly in width, which overstates the cost of a
wider rung: a cautious climb), so one slow batch cannot pin the width low for good.

    capacity(w) = P · budget / cost(w)      units that fit in the budget at width w,
                                            with P batches decoding at once (model workers)
    width       = the widest w with pending ≤ capacity(w)

so the width is B_base while pending ≤ capacity(B_base), roughly B_base·capacity/pending
above it, and `min_width` once even that cannot keep up. It drops as soon as load rises;
it climbs back one rung at a time, only when the pending work would fill at most
`climb_margin` of the wider rung's capacity and no sooner than `climb_every_s` after the
last change: a band of hysteresis, so it does not flap between rungs under steady load.
The per-level schedule (narrow at level 1) is applied on top of the final width chosen here.

When even `min_width` cannot keep up, effort has nothing left to give: the controller then
stops admitting requests once the pending units would not finish within `admit_share` of the
SLO at the narrowest width it may use (`min_width`, or `base_width` with the dynamic beam
off: admission does not depend on the beam being dynamic), so those it serves stay within
the SLO and the rest get 503 at once. Requests that cost more than a default one may fill
only `1 - cheap_reserve` of that budget: the rest is kept for default requests, so a flood of
expensive ones (beam 256, k 100) is shed before the default requests beside it are.

It also gives each batch sent to a model process its deadline (`deadline_s`): a few times
the batch's expected model time, never more than the SLO (a batch that late has failed its
requests already) and never less than 3/4 of it (on a busy 2-core host a healthy batch of a
few ms now and then takes 50 ms: a floor of half the SLO failed such batches with 503).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ControllerConfig:
    base_width: int = 64
    min_width: int = 16
    slo_s: float = 0.100
    budget_share: float = 0.5  # the rest of the SLO is for HTTP, Redis and arrival bursts
    # shed beyond what min_width finishes in this share of the SLO (GENREC_ADMISSION_BUDGET_SHARE;
    # benchmarks/results/admission.md compares 0.5, 0.65 and 0.8)
    admit_share: float = 0.65
    cheap_reserve: float = 0.25  # share of that admission budget kept for default-cost requests
    smoothing: float = 0.2  # weight of a new cost sample in the moving average
    stale_s: float = 2.0  # a rung's measurement older than this is re-estimated
    climb_margin: float = 0.7
    climb_every_s: float = 0.25
    parallel: int = 1  # batches decoded at once (model workers): pending work is shared
    enabled: bool = True  # the dynamic beam
    admission: bool = True  # shed what would not finish within the SLO
    deadline_factor: float = 5.0  # a batch's deadline: this × its expected model time …
    deadline_floor_share: float = 0.75  # … but at least this share of the SLO, at most all of it


class BeamController:
    """Chooses the final beam width for each batch; see the module docstring."""

    def __init__(self, cfg: ControllerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        if not 1 <= cfg.min_width <= cfg.base_width:
            raise ValueError("need 1 ≤ min_width ≤ base_width")
        self.cfg = cfg
        ladder, w = [], cfg.base_width
        while w > cfg.min_width:
            ladder.append(w)
            w //= 2
        self.ladder = [*ladder, cfg.min_width]  # widest first
        self.clock = clock
        self.cost: dict[int, float] = {}  # width → seconds of model time per request
        self.measured_at: dict[int, float] = {}
        self.rung = 0  # index of the current width in the ladder
        self.changed_at = float("-inf")

    @property
    def current(self) -> int:
        return self.ladder[self.rung]

    @property
    def budget_s(self) -> float:
        return self.cfg.slo_s * self.cfg.budget_share

    def estimate(self, width: int) -> float | None:
        """Seconds per unit at `width`: measured recently, else scaled linearly from the
        nearest recently measured rung (optimistic below it, cautious above; either is
        corrected once that rung runs), else from the nearest measured at all."""
        if not self.cost:
            return None
        now = self.clock()
        fresh = [w for w in self.cost if now - self.measured_at[w] <= self.cfg.stale_s]
        if width in fresh:
            return self.cost[width]
        known = min(fresh or self.cost, key=lambda w: abs(w - width))
        return self.cost[known] * width / known

    def capacity(self, width: int) -> float:
        """Units that finish within the budget at `width` (∞ before any measurement), with
        `parallel` batches decoding at once."""
        cost = self.estimate(width)
        return float("inf") if not cost else self.cfg.parallel * self.budget_s / cost

    @property
    def narrowest(self) -> int:
        """The narrowest final width the server may fall back to."""
        return self.cfg.min_width if self.cfg.enabled else self.cfg.base_width

    def admits(self, pending: float, units: float = 1.0, expensive: bool = False) -> bool:
        """Whether `units` more work, behind `pending` units, can still be served in the SLO
        (for an `expensive` request, one costing more than a default one: in the share of the
        budget not kept for default requests).
        An idle server always admits: shedding then helps no one, and the request measures
        the host afresh (one batch that a stalled host made take a second would otherwise
        shut admission for good: seen in a 10-minute soak at load average 10, every request
        shed from minute 5 on)."""
        if not self.cfg.admission or pending <= 0:
            return True
        cost = self.estimate(self.narrowest)
        budget = self.cfg.parallel * self.cfg.slo_s * self.cfg.admit_share
        if expensive:
            budget *= 1 - self.cfg.cheap_reserve
        return cost is None or (pending + units) * cost <= budget

    def deadline_s(self, units: float, width: int) -> float:
        """Seconds a batch of `units` at final width `width` may take in a model process."""
        cost = self.estimate(width)
        slo = self.cfg.slo_s
        if cost is None:
            return slo
        expected = self.cfg.deadline_factor * units * cost
        return min(slo, max(self.cfg.deadline_floor_share * slo, expected))

    def width(self, pending: float) -> int:
        """Final width for the next batch, given units queued plus running (`pending`)."""
        if not self.cfg.enabled:
            return self.cfg.base_width
        fits = [pending <= self.capacity(w) for w in self.ladder]
        now = self.clock()
        if not fits[self.rung]:  # fall at once, as far as needed
            self.rung = next((i for i in range(self.rung, len(fits)) if fits[i]), len(fits) - 1)
            self.changed_at = now
        elif (
            self.rung > 0
            and pending <= self.cfg.climb_margin * self.capacity(self.ladder[self.rung - 1])
            and now - self.changed_at >= self.cfg.climb_every_s
        ):
            self.rung -= 1
            self.changed_at = now
        return self.current

    def observe(self, units: float, width: int, seconds: float) -> None:
        """A batch of `units` of work at final width `width` took `seconds` of model time."""
        if units <= 0 or width not in self.ladder:
            return
        sample = seconds / units
        old = self.cost.get(width)
        a = self.cfg.smoothing
        if old is None or self.clock() - self.measured_at[width] > self.cfg.stale_s:
            self.cost[width] = sample  # a stale average says little about the host now
        else:
            self.cost[width] = (1 - a) * old + a * sample
        self.measured_at[width] = self.clock()
