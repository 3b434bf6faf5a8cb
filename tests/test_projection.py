import pytest
import torch

from components.projection import Projection, make_mixture_projection, make_projection


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


def test_mixture_soft_tokens_are_convex_mixtures_of_their_atoms(tmp_path):
    embeddings = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
    projection = make_mixture_projection(4, embeddings, candidates=[3, 7, 11, 20, 42], n_tokens=2, k=3, scale=50.0,
                                         seed=1)
    assert projection.atoms.shape == (2, 3, 8)
    rows = {tuple(r.tolist()) for r in embeddings[[3, 7, 11, 20, 42]]}
    assert all(tuple(a.tolist()) in rows for a in projection.atoms.reshape(-1, 8))  # real tokens, candidates only
    z = torch.rand(200, 4, generator=torch.Generator().manual_seed(2)) * 2 - 1
    soft = projection.soft_prompts(z)
    assert soft.shape == (200, 2, 8)
    # at a large logit scale each soft token is (nearly) one of its atoms, and different z pick different ones
    nearest = torch.cdist(soft.transpose(0, 1), projection.atoms).min(-1).values  # tokens x points
    assert nearest.median() < 0.05 * embeddings.norm(dim=1).mean()
    assert len({tuple(p.round(decimals=3).flatten().tolist()) for p in soft}) > 5
    projection.save(tmp_path / "m.pt")
    loaded = Projection.load(tmp_path / "m.pt")
    assert torch.equal(loaded.atoms, projection.atoms) and torch.equal(loaded.soft_prompts(z), soft)
