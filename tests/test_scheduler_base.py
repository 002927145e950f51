"""The scheduler base class: one ``sample`` interface, checked the same way for every scheduler,
and what each scheduler does with ``bounds`` and ``known`` (as its module docstring says).

Data here is 1-D Gaussian N(MU, S^2), whose ideal denoisers are closed-form for any forward
process ``x_t = a_t x0 + s_t eps`` (a_t, s_t read off the scheduler's own ``add_noise``):
E[eps | x] = s_t (x - a_t MU) / var_t and E[x0 | x] = MU + a_t S^2 (x - a_t MU) / var_t with
var_t = a_t^2 S^2 + s_t^2; the flows' velocity is their difference E[eps - x0 | x].
"""
import pytest
import torch

from pavdit.diffusion import (DDIM, DDPM, DiffusionScheduler, DPMSolver, RectifiedFlow,
                              ReflectedFlow)
from pavdit.registry import DIFFUSION_SCHEDULERS

pytestmark = pytest.mark.usefixtures('single_thread')

MU, S = 1.5, 0.5
BOX = (-0.5, 1.8)  # narrower than the data: 27% of N(1.5, 0.5^2) lies above 1.8
FACTORIES = {
    'RectifiedFlow': lambda: RectifiedFlow(num_sampling_steps=6),
    'ReflectedFlow': lambda: ReflectedFlow(num_sampling_steps=6),
    'DDPM': lambda: DDPM(num_sampling_steps=6),
    'DDIM': lambda: DDIM(num_sampling_steps=6),
    'DPMSolver': lambda: DPMSolver(num_sampling_steps=6),
}
NAMES = sorted(FACTORIES)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def coefficients(scheduler, timesteps, like):
    """(a_t, s_t) of ``x_t = a_t x0 + s_t eps`` at ``timesteps``, shaped to broadcast to like."""
    ones = torch.ones(len(timesteps), dtype=torch.float64)
    shape = (-1,) + (1,) * (like.dim() - 1)
    a = scheduler.add_noise(ones, torch.zeros_like(ones), timesteps)
    s = scheduler.add_noise(torch.zeros_like(ones), ones, timesteps)
    return a.reshape(shape), s.reshape(shape)


def exact_model(scheduler):
    """The ideal prediction for data N(MU, S^2): velocity for flows, eps for the DDPM family."""
    def model(x, timesteps, condition=None):
        a, s = coefficients(scheduler, timesteps, x)
        r = x.double() - a * MU
        var = a * a * S * S + s * s
        eps = s * r / var
        if isinstance(scheduler, RectifiedFlow):
            return (eps - (MU + a * S * S * r / var)).to(x.dtype)
        return eps.to(x.dtype)
    return model


def test_every_registered_scheduler_shares_the_base_sample():
    built_in = {name for name, cls in DIFFUSION_SCHEDULERS.module_dict.items()
                if cls.__module__.startswith('pavdit.diffusion')}
    assert built_in == set(FACTORIES)
    for name in NAMES:
        scheduler = DIFFUSION_SCHEDULERS.build(dict(type=name))
        assert isinstance(scheduler, DiffusionScheduler)
        assert type(scheduler).sample is DiffusionScheduler.sample
    with pytest.raises(TypeError, match='abstract'):
        DiffusionScheduler()


# ----------------------------------------------------------------------- malformed arguments

NOISE = torch.randn(4, 3)
BAD_ARGUMENTS = {
    'model_fn not callable': (dict(model_fn='model'), TypeError, 'model_fn must be callable'),
    'noise a list': (dict(noise=[[0.0, 1.0]]), TypeError, 'noise must be a floating'),
    'noise integer': (dict(noise=torch.zeros(4, 3, dtype=torch.long)), TypeError,
                      'noise must be a floating'),
    'noise 0-d': (dict(noise=torch.tensor(1.0)), ValueError, 'noise must be'),
    'guidance_scale nan': (dict(guidance_scale=float('nan')), ValueError,
                           'guidance_scale must be finite'),
    'guidance_scale str': (dict(guidance_scale='3'), TypeError, 'guidance_scale must be a real'),
    'num_steps 0': (dict(num_steps=0), ValueError, 'num_steps must be an int >= 1'),
    'num_steps float': (dict(num_steps=2.5), TypeError, 'num_steps must be an int'),
    'num_steps bool': (dict(num_steps=True), TypeError, 'num_steps must be an int'),
    'known alone': (dict(known=NOISE), ValueError, 'both or neither'),
    'known_mask alone': (dict(known_mask=torch.ones(4, 3)), ValueError, 'both or neither'),
    'known a list': (dict(known=[0.0], known_mask=torch.ones(4, 3)), TypeError,
                     'known must be a real-valued'),
    'known shape': (dict(known=torch.zeros(5, 3), known_mask=torch.ones(4, 3)), ValueError,
                    r'known \(5, 3\) must broadcast to the sample shape \(4, 3\)'),
    'known_mask shape': (dict(known=torch.zeros(4, 3), known_mask=torch.ones(4, 2)), ValueError,
                         r'known_mask \(4, 2\) must broadcast to the sample shape \(4, 3\)'),
    'generator seed': (dict(generator=0), TypeError, 'generator must be a torch.Generator'),
    'progress str': (dict(progress='yes'), TypeError, 'progress must be a bool'),
    'progress int': (dict(progress=1), TypeError, 'progress must be a bool'),
    'callback': (dict(callback=3), TypeError, 'callback must be callable'),
    'bounds scalar': (dict(bounds=1.0), TypeError, r'bounds must be a pair \(low, high\)'),
    'bounds triple': (dict(bounds=(0.0, 1.0, 2.0)), TypeError, 'bounds must be a pair'),
    'bounds str': (dict(bounds=('a', 1.0)), TypeError, 'bounds: low must be a real number'),
    'bounds order': (dict(bounds=(2.0, -2.0)), ValueError, 'low < high'),
    'bounds equal somewhere': (dict(bounds=(torch.tensor([0., 0., 1.]), 1.0)), ValueError,
                               'low < high'),
    'bounds shape': (dict(bounds=(torch.zeros(5, 3), 1.0)), ValueError,
                     r'bounds: low \(5, 3\) and high \(\) must broadcast to the sample shape'),
}


@pytest.mark.parametrize('case', sorted(BAD_ARGUMENTS))
@pytest.mark.parametrize('name', NAMES)
def test_malformed_sample_arguments_are_rejected_alike(name, case):
    """Every scheduler rejects each malformed argument before any model call, with the same
    error type and the same message naming the argument."""
    scheduler = FACTORIES[name]()
    calls = []
    kwargs = dict(model_fn=lambda x, t, c: calls.append(1) or torch.zeros_like(x), noise=NOISE)
    change, error, message = BAD_ARGUMENTS[case]
    kwargs.update(change)
    with pytest.raises(error, match=message) as raised:
        scheduler.sample(**kwargs)
    assert not calls
    reference = FACTORIES['RectifiedFlow']()
    with pytest.raises(error) as expected:
        reference.sample(**kwargs)
    assert str(raised.value) == str(expected.value)


@pytest.mark.parametrize('name', NAMES)
def test_num_steps_limits(name):
    """num_steps >= 1 everywhere (above); the DDPM family also caps it at its chain length."""
    scheduler = FACTORIES[name]()
    model = lambda x, t, c: torch.zeros_like(x)  # noqa: E731
    if isinstance(scheduler, DDPM):
        with pytest.raises(ValueError, match=r'number of sampling steps must be in \[1, 1000\]'):
            scheduler.sample(model, NOISE, num_steps=1001)
    else:
        assert scheduler.sample(model, NOISE, num_steps=1001).shape == NOISE.shape


@pytest.mark.parametrize('name', NAMES)
def test_callback_and_progress_bar_follow_the_plan(name, capsys):
    scheduler = FACTORIES[name]()
    steps = []
    out = scheduler.sample(lambda x, t, c: 0.1 * x, NOISE, progress=True,
                           callback=lambda i, x: steps.append(i))
    plan = len(scheduler.sampling_plan(6))  # DPM-Solver: 6 NFE = steps of order 3, 2, 1
    assert steps == list(range(plan)) and out.shape == NOISE.shape
    assert f'{plan}/{plan}' in capsys.readouterr().err


# ------------------------------------------------------------------------------------- bounds

@pytest.mark.parametrize('name', NAMES)
def test_bounds_hold_the_returned_sample(name):
    scheduler = FACTORIES[name]()
    noise = torch.randn(4000, 1, generator=gen(0))
    free = scheduler.sample(exact_model(scheduler), noise, generator=gen(1),
                            bounds=(-1e6, 1e6))  # a box that never binds
    boxed = scheduler.sample(exact_model(scheduler), noise, generator=gen(1), bounds=BOX)
    assert (boxed >= BOX[0]).all() and (boxed <= BOX[1]).all()
    assert (free > BOX[1]).float().mean() > 0.1  # the box does bind
    # Per-element tensor bounds broadcast: a second column with its own box.
    low, high = torch.tensor([BOX[0], 0.0]), torch.tensor([BOX[1], 1.0])
    two = scheduler.sample(lambda x, t, c: exact_model(scheduler)(x.reshape(-1, 1),
                                                                  t.repeat_interleave(2))
                           .reshape(-1, 2), noise.reshape(-1, 2), generator=gen(1),
                           bounds=(low, high))
    assert (two >= low).all() and (two <= high).all() and two[:, 1].max() <= 1.0


def test_rectified_flow_bounds_clamp_only_the_result():
    scheduler = RectifiedFlow(num_sampling_steps=6)
    noise = torch.randn(4000, 1, generator=gen(0))
    free = scheduler.sample(exact_model(scheduler), noise)
    assert torch.equal(scheduler.sample(exact_model(scheduler), noise, bounds=BOX),
                       free.clamp(*BOX))


def test_reflected_flow_bounds_reflect_every_step_and_default_to_its_box():
    noise = ReflectedFlow(bounds=BOX).draw_noise((4000, 1), generator=gen(0))
    states = []
    given = ReflectedFlow(num_sampling_steps=6).sample(
        exact_model(RectifiedFlow()), noise, bounds=BOX,
        callback=lambda i, x: states.append(x))
    assert all((x >= BOX[0]).all() and (x <= BOX[1]).all() for x in states)
    default = ReflectedFlow(num_sampling_steps=6, bounds=BOX).sample(
        exact_model(RectifiedFlow()), noise)
    assert torch.equal(given, default)


def _clamped_x0_model(scheduler, model, box):
    """``model``'s eps replaced by the eps whose x0 prediction is clamped into ``box``."""
    def fn(x, timesteps, condition=None):
        eps = model(x, timesteps, condition)
        a, s = coefficients(scheduler, timesteps, x)
        x0 = ((x - s * eps) / a).clamp(*box)
        return (x - a * x0) / s
    return fn


@pytest.mark.parametrize('name', ['DDPM', 'DDIM', 'DPMSolver'])
def test_ddpm_family_bounds_clamp_every_x0_prediction(name):
    """Sampling with bounds = sampling the model whose x0 predictions are clamped into the box
    (then clamping the result, which only matters for DPM-Solver's k = 0 end state)."""
    scheduler, box = FACTORIES[name](), (-0.5, 1.0)  # excludes MU: early x0 predictions clamp
    noise = torch.randn(2000, 1, generator=gen(0), dtype=torch.float64)
    model = exact_model(scheduler)
    boxed = scheduler.sample(model, noise, bounds=box, generator=gen(1))
    by_hand = scheduler.sample(_clamped_x0_model(scheduler, model, box), noise, generator=gen(1))
    # DPM-Solver's own coefficients come from its fp64 time grid, the wrapper's from the fp32
    # timesteps the model sees: measured max difference 4.5e-6 (DDPM, DDIM: below 1e-14).
    tol = 2e-5 if name == 'DPMSolver' else 1e-12
    torch.testing.assert_close(boxed, by_hand.clamp(*box), rtol=0, atol=tol)
    # ... which is not the unbounded sample clamped afterwards: the trajectory changed (measured
    # max difference 0.20 DDPM, 0.11 DDIM, 0.052 DPM-Solver).
    free = scheduler.sample(model, noise, generator=gen(1))
    assert (boxed - free.clamp(*box)).abs().max() > 0.02


# -------------------------------------------------------------------------------------- known

@pytest.mark.parametrize('name', NAMES)
def test_known_elements_are_renoised_before_every_call_and_exact_at_the_end(name):
    """Each model call sees the known elements at add_noise(known, eps_k, t) for one fixed
    eps_k (DPM-Solver: its inner evaluations too), and the result holds them exactly, even
    outside the box."""
    scheduler = FACTORIES[name]()
    noise = torch.randn(5, 4, generator=gen(0))
    known = torch.tensor([0.7, 0.0, 5.0, 0.0])  # 5.0: a known value outside the box
    mask = torch.tensor([True, False, True, False])
    seen = []

    def model(x, timesteps, condition):
        seen.append((x.clone(), timesteps.clone()))
        return 0.2 * x

    out = scheduler.sample(model, noise, known=known, known_mask=mask, generator=gen(1),
                           bounds=(-1.0, 1.0))
    assert torch.equal(out[:, mask], known[mask].expand(5, 2))
    assert (out[:, ~mask].abs() <= 1.0).all()
    assert len(seen) == 6  # one call per NFE for every scheduler here
    x_first, t_first = seen[0]
    a, s = coefficients(scheduler, t_first, x_first)
    eps_k = (x_first.double() - a * known) / s
    for x, timesteps in seen:
        a, s = coefficients(scheduler, timesteps, x)
        torch.testing.assert_close(x[:, mask].double(), (a * known + s * eps_k)[:, mask])


# Two correlated elements: a ~ N(0.5, 1), b ~ N(-0.5, 0.5^2), correlation 0.8, so
# b | a = 2 ~ N(0.1, 0.3^2) (as in tests/test_schedulers.py).
PAIR_MEAN = torch.tensor([0.5, -0.5], dtype=torch.float64)
PAIR_COV = torch.tensor([[1.0, 0.4], [0.4, 0.25]], dtype=torch.float64)


def test_dpm_solver_inpainting_conditions_the_unknown_element():
    solver = DPMSolver()  # 20 NFE, order 3
    lam, q = torch.linalg.eigh(PAIR_COV)

    def eps(x, timesteps, condition=None):  # exact E[eps | x_k] on the solver's schedule
        abar = solver.alphas_cumprod_at(timesteps).double()[:, None]
        y = (x.double() - abar.sqrt() * PAIR_MEAN) @ q
        return ((1 - abar).sqrt() / (abar * lam + 1 - abar) * y @ q.T).to(x.dtype)

    noise = torch.randn(10000, 2, generator=gen(0))
    mask = torch.tensor([1.0, 0.0])
    free = solver.sample(eps, noise)
    x = solver.sample(eps, noise, known=torch.tensor([2.0, 123.0]), known_mask=mask,
                      generator=gen(1))
    assert (x[:, 0] == 2.0).all()
    assert free[:, 1].mean().item() == pytest.approx(-0.5, abs=0.03)
    # Replacement inpainting is approximate (tests/test_schedulers.py): b's mean moves from the
    # prior -0.5 toward the exact 0.1; measured fraction of the way 0.635 (DDIM there: 0.646),
    # spread 0.37 (exact 0.3, prior 0.5).
    moved = (x[:, 1].mean().item() + 0.5) / 0.6
    assert 0.5 < moved < 1.05, moved
    assert 0.28 < x[:, 1].std().item() < 0.45
