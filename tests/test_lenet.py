import torch

from modules.lenet import LeNet


def test_layers_and_parameter_count_match_the_tutorial():
    model = LeNet(numChannels=1, classes=10)
    assert sum(p.numel() for p in model.parameters()) == 431_080
    assert (model.conv1.out_channels, model.conv1.kernel_size) == (20, (5, 5))
    assert (model.conv2.out_channels, model.conv2.kernel_size) == (50, (5, 5))
    assert (model.fc1.in_features, model.fc1.out_features) == (800, 500)
    assert (model.fc2.in_features, model.fc2.out_features) == (500, 10)


def test_forward_gives_log_probabilities_per_class():
    torch.manual_seed(0)
    model = LeNet(numChannels=1, classes=10)
    out = model(torch.rand(7, 1, 28, 28))
    assert out.shape == (7, 10)
    assert torch.allclose(out.exp().sum(dim=1), torch.ones(7), atol=1e-5)


def test_channels_and_classes_are_honoured():
    model = LeNet(numChannels=3, classes=4)
    assert model(torch.rand(2, 3, 28, 28)).shape == (2, 4)
