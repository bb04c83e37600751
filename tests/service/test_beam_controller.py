"""The beam controller shrinks the width as pending work outgrows capacity and recovers as
load falls; static when disabled; never outside [min_width, base_width]."""

import pytest

from service.beam_controller import BeamController, ControllerConfig


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def controller(clock=None, **kw):
    kw = {"admit_share": 0.8, **kw}  # the arithmetic below: 80 ms of admission budget
    cfg = ControllerConfig(base_width=64, min_width=8, slo_s=0.1, budget_share=0.5, **kw)
    return BeamController(cfg, clock or Clock())


def warm(c, seconds_per_request_at_64=0.002):
    """Batches measured at every rung: cost proportional to width."""
    for w in c.ladder:
        c.observe(10, w, 10 * seconds_per_request_at_64 * w / 64)


def test_ladder_halves_from_base_to_min():
    assert controller().ladder == [64, 32, 16, 8]
    c = BeamController(ControllerConfig(base_width=48, min_width=16))
    assert c.ladder == [48, 24, 16]


def test_full_width_until_pending_work_exceeds_capacity():
    c = controller()
    warm(c)  # 2 ms per request at 64 → 25 requests fit a 50 ms budget
    assert c.capacity(64) == pytest.approx(25)
    assert c.width(1) == 64
    assert c.width(25) == 64


def test_width_shrinks_as_load_grows():
    c = controller()
    warm(c)
    widths = [c.width(p) for p in (10, 30, 60, 120, 1000)]
    assert widths == [64, 32, 16, 8, 8]
    assert widths == sorted(widths, reverse=True)


def test_width_recovers_one_rung_at_a_time_when_load_falls():
    clock = Clock()
    c = controller(clock, stale_s=100)
    warm(c)
    assert c.width(1000) == 8
    assert c.width(1) == 8  # no sooner than climb_every_s after the last change
    widths = []
    for _ in range(4):
        clock.now += 0.3
        widths.append(c.width(1))
    assert widths == [16, 32, 64, 64]


def test_between_the_climb_margin_and_capacity_the_width_holds():
    """Hysteresis: 20 pending fit width 64 (capacity 25) but exceed 70% of it."""
    clock = Clock()
    c = controller(clock, stale_s=100)
    warm(c)
    assert c.width(30) == 32
    clock.now += 1
    assert c.width(20) == 32
    clock.now += 1
    assert c.width(17) == 64


def test_disabled_controller_is_static():
    c = controller(enabled=False)
    warm(c)
    assert c.width(10_000) == 64


def test_before_any_measurement_the_width_is_full():
    assert controller().width(10_000) == 64


def test_costs_follow_the_host():
    """When the same batches get slower (a noisy neighbour), capacity drops with them."""
    c = controller()
    warm(c, 0.002)
    assert c.width(20) == 64
    for _ in range(30):
        c.observe(10, 64, 10 * 0.004)
    assert c.width(20) == 32


def test_unmeasured_rungs_are_estimated_from_the_nearest_measured_one():
    c = controller()
    c.observe(10, 64, 0.02)
    assert c.estimate(32) == pytest.approx(0.001)
    assert c.width(40) == 32


def test_a_stale_slow_measurement_does_not_pin_the_width_low():
    """One slow batch at full width (a cold start) shrinks the width; once that measurement
    is stale, the full width is estimated from the rung in use and tried again."""
    now = [0.0]
    c = BeamController(
        ControllerConfig(base_width=64, min_width=8, slo_s=0.1, stale_s=2.0), lambda: now[0]
    )
    c.observe(1, 64, 0.2)  # a cold first batch: 200 ms for one request
    width = c.width(1)
    assert width < 64
    for _ in range(10):
        now[0] += 0.5
        c.observe(1, width, 0.002 * width / 64)  # the host is fast after all
        width = c.width(1)
    assert width == 64


def test_requests_past_what_min_width_serves_in_the_slo_are_not_admitted():
    c = controller()  # slo 100 ms, admit_share 0.8 → 80 ms
    assert c.admits(10_000)  # nothing measured yet: admit
    warm(c)  # 0.25 ms per request at width 8
    assert c.admits(100) and c.admits(318)
    assert not c.admits(320)
    off = controller(admission=False)
    warm(off)
    assert off.admits(10_000)


def test_admission_counts_units_not_requests():
    """A request of 4 units (beam 256 vs 64) takes the room of four default ones."""
    c = controller()
    warm(c)  # room for 319 units at width 8
    assert c.admits(300, units=4) and not c.admits(317, units=4)
    assert c.admits(317, units=1)


def test_expensive_requests_leave_a_share_of_the_budget_to_default_ones():
    """A flood of beam-256 requests fills at most 3/4 of the admission budget; the last
    quarter is kept for default requests, so they are not shed alike."""
    c = controller()
    warm(c)  # room for 319 units at width 8
    assert c.admits(230, units=4, expensive=True) and not c.admits(237, units=4, expensive=True)
    assert c.admits(237, units=1) and c.admits(317, units=1)
    flat = controller(cheap_reserve=0.0)
    warm(flat)
    assert flat.admits(300, units=4, expensive=True)


def test_the_static_beam_sheds_too_against_its_own_width():
    """Admission does not depend on the dynamic beam: with the beam fixed at 64 the server
    sheds once what is pending would not finish in the SLO at width 64."""
    static = controller(enabled=False)
    warm(static)
    assert static.width(10_000) == 64
    room = [p for p in range(1000) if static.admits(p)]
    assert room and len(room) < 1000
    assert static.narrowest == 64 and controller().narrowest == 8


def test_a_batch_deadline_is_a_few_times_its_cost_within_the_slo():
    c = controller()  # slo 100 ms
    assert c.deadline_s(8, 64) == pytest.approx(0.1)  # nothing measured: the SLO
    warm(c)  # 2 ms per request at 64
    assert c.deadline_s(9, 64) == pytest.approx(0.09)  # 5 × 18 ms
    assert c.deadline_s(1, 64) == pytest.approx(0.075)  # floor: 3/4 of the SLO
    assert c.deadline_s(40, 64) == pytest.approx(0.1)  # cap: the SLO


def test_parallel_workers_share_the_pending_work():
    one, two = controller(), controller(parallel=2)
    warm(one), warm(two)
    assert two.capacity(64) == pytest.approx(2 * one.capacity(64))
    assert one.width(40) == 32 and two.width(40) == 64  # 40 requests over two workers fit
    admitted = [p for p in range(1000) if one.admits(p)]
    assert len([p for p in range(1000) if two.admits(p)]) == pytest.approx(2 * len(admitted), abs=2)


def test_an_idle_server_admits_whatever_it_measured_last():
    """A stalled host made one batch take 2 s: nothing pending, the next request is admitted
    (and its batch measures the host again), so admission cannot shut for good."""
    clock = Clock()
    c = controller(clock)
    c.observe(1, 8, 2.0)
    assert not c.admits(1) and c.admits(0)
    clock.now += 5.0  # stale: the next batch replaces the estimate
    c.observe(1, 8, 0.002)
    assert c.admits(30)
