"""The LeNet architecture, exactly as the tutorial builds it."""

from torch import flatten, nn


class LeNet(nn.Module):
    """(CONV => RELU => POOL) * 2 => FC => RELU => FC => LogSoftmax.

    For 28x28 inputs the second pooling layer leaves 50 maps of 4x4, hence
    the 800 inputs of the first fully connected layer.
    """

    def __init__(self, numChannels, classes):
        # call the parent constructor
        super().__init__()

        # first set of CONV => RELU => POOL layers
        self.conv1 = nn.Conv2d(in_channels=numChannels, out_channels=20, kernel_size=(5, 5))
        self.relu1 = nn.ReLU()
        self.maxpool1 = nn.MaxPool2d(kernel_size=(2, 2), stride=(2, 2))

        # second set of CONV => RELU => POOL layers
        self.conv2 = nn.Conv2d(in_channels=20, out_channels=50, kernel_size=(5, 5))
        self.relu2 = nn.ReLU()
        self.maxpool2 = nn.MaxPool2d(kernel_size=(2, 2), stride=(2, 2))

        # first (and only) set of FC => RELU layers
        self.fc1 = nn.Linear(in_features=800, out_features=500)
        self.relu3 = nn.ReLU()

        # softmax classifier
        self.fc2 = nn.Linear(in_features=500, out_features=classes)
        self.logSoftmax = nn.LogSoftmax(dim=1)

    def forward(self, x):
        x = self.maxpool1(self.relu1(self.conv1(x)))
        x = self.maxpool2(self.relu2(self.conv2(x)))

        # flatten the 50x4x4 maps into a vector for the FC layers
        x = flatten(x, 1)
        x = self.relu3(self.fc1(x))

        # log-probabilities: pair them with NLLLoss
        return self.logSoftmax(self.fc2(x))
