"""The schedule and the three parameterizations (paper Eq. 1-3)."""

import pytest
import torch

from leafnet.diffusion import NoiseSchedule, estimate_z0

SCHEDULE = NoiseSchedule()


def test_schedule_is_ldm_scaled_linear_and_variance_preserving():
    betas = SCHEDULE.scheduler.betas
    assert betas[0].item() == pytest.approx(0.0015) and betas[-1].item() == pytest.approx(0.0155)
    assert betas[500].sqrt().item() == pytest.approx((0.0015**0.5 + 0.0155**0.5) / 2, rel=1e-3)
    t = torch.arange(0, 1000, 37)
    like = torch.zeros(len(t), 4)
    assert torch.allclose(SCHEDULE.alpha(t, like) ** 2 + SCHEDULE.sigma(t, like) ** 2,
                          torch.ones(len(t), 1))
    assert SCHEDULE.alpha(torch.tensor([999]), like[:1]).item() == pytest.approx(0.0259, abs=1e-3)


@pytest.mark.parametrize("kind", ["eps", "v", "x0"])
def test_every_parameterization_recovers_z0_from_its_true_target(kind):
    generator = torch.Generator().manual_seed(0)
    z0 = torch.randn(6, 4, 8, 8, generator=generator)
    noise = torch.randn(6, 4, 8, 8, generator=generator)
    t = torch.tensor([0, 1, 250, 500, 998, 999])
    z_t = SCHEDULE.add_noise(z0, noise, t)
    target = {"eps": noise, "x0": z0, "v": SCHEDULE.scheduler.get_velocity(z0, noise, t)}[kind]
    torch.testing.assert_close(estimate_z0(kind, target, z_t, t, SCHEDULE), z0, atol=2e-4,
                               rtol=1e-4)


def test_z0_estimate_is_float32_under_bfloat16_outputs():
    output = torch.randn(1, 4, 2, 2).bfloat16()
    z_t = torch.randn(1, 4, 2, 2).bfloat16()
    assert estimate_z0("eps", output, z_t, torch.tensor([999]), SCHEDULE).dtype == torch.float32


def test_timestep_samplings_draw_where_they_say():
    from leafnet.diffusion.timesteps import draw_timesteps

    def draw(kind):
        return draw_timesteps(kind, 1000, 4000, torch.Generator().manual_seed(0))

    uniform = draw("uniform")
    assert torch.equal(uniform, torch.randint(0, 1000, (4000,),
                                              generator=torch.Generator().manual_seed(0)))
    assert bool((draw("last") == 999).all())
    top = draw("top10")
    assert int(top.min()) >= 900 and int(top.max()) == 999
    mix = draw("mix")
    assert 0.45 < float((mix == 999).float().mean()) < 0.55 and int(mix.min()) < 100
    with pytest.raises(ValueError, match="timestep sampling"):
        draw("sometimes")
