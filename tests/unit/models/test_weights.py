"""Pretrained-weight conversion, install, fetch and the messages for missing weights.

The CompVis checkpoints are imitated at tiny sizes with their original key names: the U-Net by a
re-implementation of openaimodel.UNetModel (compvis_reference.py), the autoencoder by renaming a
diffusers AutoencoderKL's keys back to CompVis' names.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import zipfile
from dataclasses import replace

import pytest
import torch
from compvis_reference import UNetModel
from diffusers import AutoencoderKL, UNet2DModel

from leafnet.errors import LeafnetError
from leafnet.models.backbone import set_attention_heads
from leafnet.models.network import build_network, network_config
from leafnet.models.presets import PRESETS, _unet, get_preset
from leafnet.models.weights.cli import main as weights_main
from leafnet.models.weights.compvis import check_complete, convert_ldm_unet
from leafnet.models.weights.download import fetch
from leafnet.models.weights.sources import RemoteFile, install
from leafnet.models.weights.store import installed_scale_factor, load_ldm_unet

TINY_LDM = dict(in_channels=4, model_channels=8, out_channels=4, num_res_blocks=1,
                attention_resolutions=(1, 2), channel_mult=(1, 2, 2), num_heads=2, groups=4)


def reference_unet(seed: int = 0, **overrides) -> UNetModel:
    torch.manual_seed(seed)
    return UNetModel(**{**TINY_LDM, **overrides}).eval()


def test_ldm_unet_conversion_uses_every_key_and_reproduces_the_original():
    reference = reference_unet(num_res_blocks=2)
    source = reference.state_dict()
    config = _unet((8, 16, 16), (True, True, False), layers=2, groups=4, resnet_updown=True)
    unet = UNet2DModel(**config).eval()
    set_attention_heads(unet, 2)
    converted = convert_ldm_unet(source, config, heads=2)
    check_complete(converted, source, unet, "U-Net")
    unet.load_state_dict(converted.state)
    x, t = torch.randn(2, 4, 16, 16), torch.tensor([7, 999])
    with torch.no_grad():
        torch.testing.assert_close(unet(x, t).sample, reference(x, t), atol=1e-4, rtol=1e-4)


def test_conversion_reports_a_mismatched_checkpoint():
    source = reference_unet().state_dict()
    source["input_blocks.99.0.in_layers.0.weight"] = torch.zeros(1)
    config = _unet((8, 16, 16), (True, True, False), layers=1, groups=4, resnet_updown=True)
    converted = convert_ldm_unet(source, config, heads=2)
    with pytest.raises(LeafnetError, match="1 unused keys"):
        check_complete(converted, source, UNet2DModel(**config), "U-Net")


def compvis_vae_state(autoencoder: AutoencoderKL) -> dict[str, torch.Tensor]:
    """Rename a diffusers AutoencoderKL's keys to CompVis' (the inverse of the conversion)."""
    levels = len(autoencoder.config.block_out_channels)
    renamed = {}
    for key, value in autoencoder.state_dict().items():
        new = key
        new = re.sub(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)", r"encoder.down.\1.block.\2",
                     new)
        new = re.sub(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0", r"encoder.down.\1.downsample",
                     new)
        new = re.sub(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)",
                     lambda m: f"decoder.up.{levels - 1 - int(m[1])}.block.{m[2]}", new)
        new = re.sub(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0",
                     lambda m: f"decoder.up.{levels - 1 - int(m[1])}.upsample", new)
        new = new.replace("mid_block.resnets.0", "mid.block_1").replace(
            "mid_block.resnets.1", "mid.block_2").replace("mid_block.attentions.0", "mid.attn_1")
        new = new.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")
        new = re.sub(r"attn_1\.group_norm", "attn_1.norm", new)
        for diffusers_name, compvis_name in (("to_q", "q"), ("to_k", "k"), ("to_v", "v"),
                                             ("to_out.0", "proj_out")):
            if f"attn_1.{diffusers_name}." in new:
                new = new.replace(f"attn_1.{diffusers_name}.", f"attn_1.{compvis_name}.")
                if value.ndim == 2:
                    value = value[:, :, None, None]
        renamed[new] = value
    renamed["loss.logvar"] = torch.zeros(())
    return renamed


def write_compvis_zip(path, state):
    """A CompVis-style release: a zip holding a Lightning-style model.ckpt."""
    checkpoint = path.with_suffix(".ckpt")
    torch.save({"state_dict": state, "global_step": 1}, checkpoint)
    with zipfile.ZipFile(path, "w") as archive:
        archive.write(checkpoint, "model.ckpt")
    checkpoint.unlink()
    return path


def tiny_ldm_release(tmp_path):
    """kl-f8.zip and lsun_churches.zip with tiny-preset shapes and CompVis key names."""
    torch.manual_seed(1)
    autoencoder = AutoencoderKL(**get_preset("tiny").autoencoder).eval()
    tiny = get_preset("tiny").unet
    reference = reference_unet(model_channels=16, channel_mult=(1, 2), attention_resolutions=(2,),
                               num_heads=get_preset("tiny").attention_heads)
    assert tiny["block_out_channels"] == [16, 32]
    unet_state = {f"model.diffusion_model.{k}": v for k, v in reference.state_dict().items()}
    unet_state["betas"] = torch.zeros(1000)
    vae_zip = write_compvis_zip(tmp_path / "kl-f8.zip", compvis_vae_state(autoencoder))
    unet_zip = write_compvis_zip(tmp_path / "lsun_churches.zip", unet_state)
    return autoencoder, reference, vae_zip, unet_zip


@pytest.fixture
def ldm_shaped_tiny_preset(monkeypatch):
    """The tiny preset with the LDM U-Net's block kinds (scale-shift, res-block up/down)."""
    tiny = replace(PRESETS["tiny"], unet=_unet((16, 32), (False, True), layers=1, groups=4,
                                               resnet_updown=True))
    monkeypatch.setitem(PRESETS, "tiny", tiny)
    return tiny


def test_imported_ldm_release_loads_through_the_network_builder(tmp_path,
                                                                ldm_shaped_tiny_preset):
    autoencoder, reference, vae_zip, unet_zip = tiny_ldm_release(tmp_path)
    folder = install("ldm-kl8-churches", [vae_zip, unet_zip], options={"preset": "tiny"})
    assert (folder / "vae" / "diffusion_pytorch_model.safetensors").is_file()
    config = network_config("tiny", "x0")
    config.autoencoder_weights = config.unet_weights = "ldm-kl8-churches"
    network = build_network(config).eval()
    for key, value in autoencoder.state_dict().items():
        torch.testing.assert_close(network.autoencoder.state_dict()[key], value)
    x, t = torch.randn(1, 4, 8, 8), torch.tensor([500])
    with torch.no_grad():
        torch.testing.assert_close(network.denoise(x, x, t), reference(x, t), atol=1e-4,
                                   rtol=1e-4)


class NotATensor:
    """An object a weights-only unpickler refuses."""


def test_pickled_checkpoint_needs_trust(tmp_path):
    path = tmp_path / "odd.ckpt"
    torch.save({"state_dict": {}, "callback": NotATensor()}, path)
    with pytest.raises(LeafnetError, match="--trust-pickle"):
        install("ldm-kl8-churches", [path])


def test_fetch_downloads_checks_and_converts(tmp_path, leafnet_folders, monkeypatch,
                                            ldm_shaped_tiny_preset):
    _, _, vae_zip, unet_zip = tiny_ldm_release(tmp_path)
    monkeypatch.setitem(PRESETS, "paper", ldm_shaped_tiny_preset)
    digest = hashlib.sha256(unet_zip.read_bytes()).hexdigest()
    remote = [RemoteFile(vae_zip.as_uri(), "kl-f8.zip"),
              RemoteFile(unet_zip.as_uri(), "lsun_churches.zip", digest)]
    folder = fetch("ldm-kl8-churches", remote_files=remote, show_progress=False)
    assert (folder / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert digest in (folder / "source.json").read_text()
    bad = [RemoteFile(unet_zip.as_uri(), "again.zip", "0" * 64)]
    with pytest.raises(LeafnetError, match="does not match the published"):
        fetch("ldm-kl8-churches", remote_files=bad, show_progress=False)
    assert not (leafnet_folders["LEAFNET_WEIGHTS"] / "downloads" / "again.zip").exists()


def test_unreachable_download_says_how_to_import(tmp_path):
    remote = [RemoteFile((tmp_path / "absent.zip").as_uri(), "absent.zip")]
    with pytest.raises(LeafnetError, match="leafnet_weights import"):
        fetch("ldm-kl8-churches", remote_files=remote, show_progress=False)


def test_missing_weights_are_one_message_naming_the_commands(capsys):
    with pytest.raises(SystemExit) as exited:
        weights_main(["import", "dinov2-vitb14-reg", "/nonexistent/file.pth"])
    assert exited.value.code == 1
    assert "no such file" in capsys.readouterr().err
    weights_main(["list"])
    listing = capsys.readouterr().out
    assert "ldm-kl8-churches" in listing and "not installed" in listing
    assert "lsun_churches.zip" in listing


FAKE_LIGHTNING = {
    "pytorch_lightning/__init__.py": "",
    "pytorch_lightning/callbacks/__init__.py": "",
    "pytorch_lightning/callbacks/model_checkpoint.py":
        "class ModelCheckpoint:\n    pass\n",
    "pytorch_lightning/utilities/__init__.py": "",
    "pytorch_lightning/utilities/parsing.py":
        "class AttributeDict(dict):\n    pass\n",
}


def lightning_release(tmp_path, monkeypatch, scale_factor=None):
    """lsun_churches.zip as Lightning 1.4 writes it: the whole key layout of the release
    (U-Net, its EMA copy, the first stage, schedule buffers) plus epoch, global_step, callbacks
    keyed by a Lightning class, optimizer and scheduler states, and an AttributeDict. The fake
    ``pytorch_lightning`` is importable only while the file is written."""
    modules = tmp_path / "fake_site"
    for relative, text in FAKE_LIGHTNING.items():
        (modules / relative).parent.mkdir(parents=True, exist_ok=True)
        (modules / relative).write_text(text)
    autoencoder, reference, vae_zip, _ = tiny_ldm_release(tmp_path)
    raw = {f"model.diffusion_model.{k}": v for k, v in reference.state_dict().items()}
    ema = {"model_ema." + k.removeprefix("model.").replace(".", ""): v + 1.0
           for k, v in raw.items()}
    first_stage = {f"first_stage_model.{k}": v
                   for k, v in compvis_vae_state(autoencoder).items()}
    schedule = {name: torch.linspace(0, 1, 1000) for name in
                ("betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
                 "posterior_variance", "posterior_log_variance_clipped")}
    state = {**raw, **ema, **first_stage, **schedule,
             "model_ema.decay": torch.tensor(0.9999), "model_ema.num_updates": torch.tensor(7)}
    if scale_factor is not None:
        state["scale_factor"] = torch.tensor(scale_factor)
    monkeypatch.syspath_prepend(str(modules))
    from pytorch_lightning.callbacks.model_checkpoint import ModelCheckpoint
    from pytorch_lightning.utilities.parsing import AttributeDict

    layer = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=1e-4)
    layer(torch.randn(1, 2)).sum().backward()
    optimizer.step()
    checkpoint = {
        "epoch": 3, "global_step": 123, "pytorch-lightning_version": "1.4.2",
        "state_dict": state,
        "callbacks": {ModelCheckpoint: {"monitor": None, "best_model_score": None,
                                        "best_model_path": "", "current_score": None}},
        "optimizer_states": [optimizer.state_dict()],
        "lr_schedulers": [{"base_lrs": [1e-4], "last_epoch": 3}],
        "hyper_parameters": AttributeDict(base_learning_rate=1e-4),
    }
    unet_zip = tmp_path / "lsun_churches.zip"
    unet_zip.unlink()
    ckpt = tmp_path / "model.ckpt"
    torch.save(checkpoint, ckpt)
    with zipfile.ZipFile(unet_zip, "w") as archive:
        archive.write(ckpt, "model.ckpt")
    ckpt.unlink()
    for name in [m for m in sys.modules if m.startswith("pytorch_lightning")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(modules)])
    with pytest.raises(ModuleNotFoundError):
        __import__("pytorch_lightning")
    return reference, vae_zip, unet_zip


def test_lightning_checkpoint_imports_without_lightning_or_unpickling_code(
        tmp_path, monkeypatch, ldm_shaped_tiny_preset):
    reference, vae_zip, unet_zip = lightning_release(tmp_path, monkeypatch)
    folder = install("ldm-kl8-churches", [vae_zip, unet_zip], options={"preset": "tiny"})
    source = json.loads((folder / "source.json").read_text())
    assert source["unet_weights"].startswith("raw")
    assert source["scale_factor"] == pytest.approx(0.18215)
    assert "default" in source["scale_factor_from"]
    unet = load_ldm_unet(folder / "unet").eval()
    x, t = torch.randn(1, 4, 8, 8), torch.tensor([500])
    with torch.no_grad():
        torch.testing.assert_close(unet(x, t).sample, reference(x, t), atol=1e-4, rtol=1e-4)
    with pytest.raises(LeafnetError, match="module 'pytorch_lightning' is not installed"):
        install("ldm-kl8-churches", [vae_zip, unet_zip], trust_pickle=True,
                options={"preset": "tiny"})


def test_ema_weights_and_the_checkpoints_scale_factor_are_taken_and_recorded(
        tmp_path, monkeypatch, ldm_shaped_tiny_preset):
    reference, vae_zip, unet_zip = lightning_release(tmp_path, monkeypatch, scale_factor=0.2277)
    with pytest.warns(UserWarning, match="scale_factor is 0.2277"):
        folder = install("ldm-kl8-churches", [vae_zip, unet_zip],
                         options={"preset": "tiny", "unet_weights": "ema"})
    source = json.loads((folder / "source.json").read_text())
    assert source["unet_weights"].startswith("ema")
    assert (source["scale_factor"], source["scale_factor_from"]) == (pytest.approx(0.2277),
                                                                     "checkpoint")
    assert installed_scale_factor("ldm-kl8-churches") == pytest.approx(0.2277)
    monkeypatch.setitem(PRESETS, "paper", replace(ldm_shaped_tiny_preset, name="paper",
                                                  pretrained="ldm-kl8-churches"))
    assert network_config("paper").latent_scale == pytest.approx(0.2277)
    ema_conv_in = load_ldm_unet(folder / "unet").state_dict()["conv_in.weight"]
    raw_conv_in = reference.state_dict()["input_blocks.0.0.weight"]
    torch.testing.assert_close(ema_conv_in, raw_conv_in + 1.0)


class Payload:
    """A class outside the allow-list: what a malicious checkpoint would reference."""


def test_a_class_outside_the_allow_list_is_refused_by_name(tmp_path):
    path = tmp_path / "odd.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": Payload()}, path)
    with pytest.raises(LeafnetError, match=r"test_weights\.Payload.*--trust-pickle"):
        install("ldm-kl8-churches", [path])
