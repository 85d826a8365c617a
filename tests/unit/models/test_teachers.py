"""Teachers (tiny random weights in the real formats, installed and loaded by the real code),
the token grid against the U-Net block grid, and the distillation loss."""

from __future__ import annotations

import pytest
import torch

from leafnet.errors import LeafnetError
from leafnet.models.distillation import EncoderFeatureHook, Projector, distillation_loss
from leafnet.models.network import build_network, network_config
from leafnet.models.teachers import load_teacher
from tiny_teachers import install_tiny_teachers

@pytest.mark.parametrize("name, input_size, dim", [("dinov2", 224, 24), ("clip", 256, 32)])
def test_teacher_token_grid_equals_the_chosen_unet_block_grid(tmp_path, name, input_size, dim):
    install_tiny_teachers(tmp_path)
    teacher = load_teacher(name, grid=16)
    assert teacher.input_size == input_size
    image = torch.rand(2, 3, 256, 256) * 2 - 1
    tokens = teacher(image)
    assert tokens.shape == (2, 256, dim)
    network = build_network(network_config("tiny"))
    hook = EncoderFeatureHook(network.backbone, teacher.num_tokens)
    with hook:
        latent = network.encode_image(image)
        network.denoise(latent, torch.randn_like(latent), torch.tensor([10, 20]))
    assert hook.feature.shape[-2] * hook.feature.shape[-1] == tokens.shape[1]
    projected = Projector(hook.channels(), teacher.dim)(hook.feature)
    assert projected.shape == tokens.shape
    assert not any(p.requires_grad for p in teacher.parameters())


def test_teacher_position_embeddings_follow_the_grid(tmp_path):
    install_tiny_teachers(tmp_path)
    assert load_teacher("dinov2", grid=8)(torch.zeros(1, 3, 64, 64)).shape == (1, 64, 24)
    assert load_teacher("clip", grid=3)(torch.zeros(1, 1, 40, 40)).shape == (1, 9, 32)


def test_missing_teacher_names_the_command():
    with pytest.raises(LeafnetError, match="leafnet_weights fetch dinov2-vitb14-reg"):
        load_teacher("dinov2", grid=16)


def test_hook_without_a_matching_block_is_a_clear_error():
    network = build_network(network_config("tiny"))
    with pytest.raises(LeafnetError, match="no U-Net encoder block has 49 positions"):
        with EncoderFeatureHook(network.backbone, 49):
            network.denoise(torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8), torch.tensor([1]))


def test_distillation_loss_is_minus_mean_cosine():
    teacher = torch.randn(3, 5, 8)
    assert distillation_loss(teacher, teacher * 2).item() == pytest.approx(-1.0)
    assert distillation_loss(teacher, -teacher).item() == pytest.approx(1.0)
    orthogonal = torch.zeros(1, 2, 2)
    orthogonal[0, :, 0] = 1
    other = torch.zeros(1, 2, 2)
    other[0, 0, 1], other[0, 1, 0] = 1, 1
    assert distillation_loss(orthogonal, other).item() == pytest.approx(-0.5)


def test_each_teacher_is_one_registry_entry_known_everywhere():
    from leafnet.models.teacher_specs import TEACHER_SPECS, teacher_spec
    from leafnet.models.weights.sources import SOURCES
    from leafnet.models.weights.store import KNOWN

    for entry, spec in TEACHER_SPECS.items():
        assert teacher_spec(spec.alias) is spec and teacher_spec(entry) is spec
        assert entry in KNOWN and SOURCES[entry][0] == list(spec.remote_files)
    with pytest.raises(LeafnetError, match="unknown teacher 'dino'.*dinov2"):
        teacher_spec("dino")
