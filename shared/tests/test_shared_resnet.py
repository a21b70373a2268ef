import pytest
import torch

from shared.errors import UserError
from shared.resnet import adapt_first_conv, resnet18_one_channel


def test_first_conv_averages_rgb():
    w = torch.randn(64, 3, 7, 7)
    state = adapt_first_conv({"conv1.weight": w, "fc.weight": torch.zeros(1000, 512)})
    assert (
        torch.allclose(state["conv1.weight"], w.mean(1, keepdim=True)) and "fc.weight" not in state
    )


def test_local_weights_load_and_offline_message(tmp_path, monkeypatch):
    from torchvision.models import resnet18

    path = tmp_path / "r18.pth"
    torch.save(resnet18(weights=None).state_dict(), path)
    model = resnet18_one_channel(10, pretrained=True, weights_path=path)
    assert model.conv1.weight.shape == (64, 1, 7, 7) and model.fc.out_features == 10
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))

    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr("torch.hub.load_state_dict_from_url", offline)
    with pytest.raises(UserError, match="--weights PATH.*--no-pretrained"):
        resnet18_one_channel(10, pretrained=True)
