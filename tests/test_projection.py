import pytest
import torch

from components.projection import Projection, make_projection


@pytest.mark.parametrize("scale", [0.5, 1.0, 3.0])
def test_soft_prompt_spread_matches_embedding_spread(scale):
    projection = make_projection(10, 5, 64, embedding_std=0.14, scale=scale, seed=0)
    z = torch.rand(4000, 10, generator=torch.Generator().manual_seed(1)) * 2 - 1
    soft = projection.soft_prompts(z)
    assert soft.shape == (4000, 5, 64)
    assert soft.std().item() == pytest.approx(0.14 * scale, rel=0.05)


def test_projection_is_seeded_and_round_trips(tmp_path):
    a, b = make_projection(4, 2, 8, 1.0, 1.0, seed=7), make_projection(4, 2, 8, 1.0, 1.0, seed=7)
    assert torch.equal(a.matrix, b.matrix)
    assert not torch.equal(a.matrix, make_projection(4, 2, 8, 1.0, 1.0, seed=8).matrix)
    a.save(tmp_path / "p.pt")
    loaded = Projection.load(tmp_path / "p.pt")
    assert torch.equal(loaded.matrix, a.matrix) and loaded.seed == 7 and loaded.intrinsic_dim == 4


def test_wrong_z_shape_is_refused():
    with pytest.raises(ValueError, match=r"z must be b x 4, got \(3, 5\)"):
        make_projection(4, 2, 8, 1.0, 1.0, 0).soft_prompts(torch.zeros(3, 5))
