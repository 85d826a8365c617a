"""The LEAF network: conv_in widening, mask coding, presets, building, saving and loading."""

import pytest
import torch
from diffusers import AutoencoderKL

from leafnet.errors import LeafnetError
from leafnet.models.autoencoder import decode_mask, encode_mask
from leafnet.models.backbone import UNet2DBackbone, widen_conv_in
from leafnet.models.distillation import EncoderFeatureHook, Projector
from leafnet.models.network import (
    NETWORK_CONFIG_VERSION,
    NetworkConfig,
    build_network,
    load_network,
    network_config,
    save_network,
)
from leafnet.models.presets import get_preset


def test_widened_conv_in_equals_the_original_on_equal_halves():
    torch.manual_seed(0)
    backbone = UNet2DBackbone(get_preset("tiny").unet, attention_heads=2)
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([5, 900])
    original = backbone(x, t)
    conv = backbone.conv_in
    backbone.replace_conv_in(widen_conv_in(conv))
    assert backbone.conv_in.in_channels == 8
    torch.testing.assert_close(backbone.conv_in.bias, conv.bias)
    torch.testing.assert_close(backbone(torch.cat([x, x], dim=1), t), original, atol=1e-5,
                               rtol=1e-5)


def test_mask_encode_decode_keeps_shape_and_range():
    autoencoder = AutoencoderKL(**get_preset("tiny").autoencoder).eval()
    mask = (torch.rand(2, 1, 32, 32) > 0.5).float()
    latent = encode_mask(autoencoder, mask, latent_scale=0.5)
    assert latent.shape == (2, 4, 4, 4)
    probability = decode_mask(autoencoder, latent, latent_scale=0.5)
    assert probability.shape == (2, 1, 32, 32)
    assert 0 <= probability.min() and probability.max() <= 1


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_network_predicts_probabilities_at_image_size(preset):
    network = build_network(network_config(preset, "eps")).eval()
    size = 32 if preset == "tiny" else 64
    image = torch.rand(2, 3, size, size) * 2 - 1
    probability = network.predict(image, torch.Generator().manual_seed(0), num_samples=2)
    assert probability.shape == (2, 1, size, size)
    assert 0 <= probability.min() and probability.max() <= 1
    again = network.predict(image, torch.Generator().manual_seed(0), num_samples=2)
    torch.testing.assert_close(probability, again)


def test_gray_images_are_replicated_to_rgb():
    network = build_network(network_config("tiny")).eval()
    gray = torch.rand(1, 1, 32, 32) * 2 - 1
    torch.testing.assert_close(network.encode_image(gray),
                               network.encode_image(gray.expand(-1, 3, -1, -1)))


def test_only_the_image_encoder_and_backbone_train():
    network = build_network(network_config("tiny")).train()
    assert not network.autoencoder.training
    assert not any(p.requires_grad for p in network.autoencoder.parameters())
    assert all(p.requires_grad for p in network.image_encoder.parameters())
    assert all(p.requires_grad for p in network.backbone.parameters())


def test_saved_network_loads_with_identical_predictions(tmp_path):
    network = build_network(network_config("tiny", "v")).eval()
    save_network(network, tmp_path / "model")
    loaded = load_network(tmp_path / "model").eval()
    assert loaded.config == network.config
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(loaded.predict(image, torch.Generator().manual_seed(3)),
                               network.predict(image, torch.Generator().manual_seed(3)))


def test_distillation_parts_do_not_change_the_inference_network():
    network = build_network(network_config("tiny", "x0"))
    count = sum(p.numel() for p in network.parameters())
    keys = set(network.state_dict())
    hook = EncoderFeatureHook(network.backbone, num_tokens=4 * 4)
    with hook:
        network.denoise(torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8), torch.tensor([3]))
    projector = Projector(hook.channels(), out_dim=24)
    assert projector(hook.feature).shape == (1, 16, 24)
    assert sum(p.numel() for p in network.parameters()) == count
    assert set(network.state_dict()) == keys


def test_paper_preset_without_weights_is_one_clear_error():
    with pytest.raises(LeafnetError, match="leafnet_weights fetch ldm-kl8-churches"):
        build_network(network_config("paper"))


def test_paper_preset_is_the_ldm_kl8_churches_configuration():
    unet = get_preset("paper").unet
    assert unet["block_out_channels"] == [192, 384, 384, 768, 768]
    assert unet["layers_per_block"] == 2
    assert unet["down_block_types"] == ["AttnDownBlock2D"] * 4 + ["DownBlock2D"]
    assert unet["resnet_time_scale_shift"] == "scale_shift"
    assert unet["downsample_type"] == unet["upsample_type"] == "resnet"
    assert get_preset("paper").attention_heads == 8
    assert get_preset("paper").latent_scale == 0.18215


def test_network_configs_without_a_version_load_and_newer_ones_are_refused():
    saved = network_config("tiny").to_json()
    assert saved["version"] == NETWORK_CONFIG_VERSION
    older = {key: value for key, value in saved.items() if key != "version"}
    assert NetworkConfig.from_json(older).unet == saved["unet"]
    with pytest.raises(LeafnetError, match="newer leafnet"):
        NetworkConfig.from_json({**saved, "version": NETWORK_CONFIG_VERSION + 1})


def test_two_channel_networks_from_before_the_repeated_spare_channel_are_refused():
    saved = network_config("tiny", mask_channels=2).to_json()
    assert NetworkConfig.from_json(saved).mask_channels == 2
    for old in (1, 0):
        with pytest.raises(LeafnetError, match="spare RGB channel at -1"):
            NetworkConfig.from_json({**saved, "version": old})
    binary = network_config("tiny").to_json()
    assert NetworkConfig.from_json({**binary, "version": 1}).mask_channels == 1
