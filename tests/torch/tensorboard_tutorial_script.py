"""TensorBoard's own tutorial, as its docs write it, with a train and a val writer.

The calls follow PyTorch's "torch.utils.tensorboard" page and its "Visualizing models,
data, and training with TensorBoard" tutorial (random data instead of FashionMNIST,
which needs a download), with the tags TensorBoard users write. The test runs this file
as it is, then with only the import line changed to ``mlflow_plugin.torch``.
"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.tensorboard import SummaryWriter

torch.manual_seed(0)
np.random.seed(0)

# Tags TensorBoard takes as they are and MLflow does not.
TAGS = [
    "acc@1",
    "loss (train)",
    "top-1 [%]",
    "lr=0.1/loss",
    "温度/é",
    "/leading/slash",
    "a/../b",
    "x" * 300,
    "Loss/train",
    "loss_train",
    "loss@train",
]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 4 * 4, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 16 * 4 * 4)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def plot_classes_preds(images, labels):
    fig = plt.figure(figsize=(12, 48))  # a tall figure: 1200 x 4800 pixels
    for idx in range(4):
        ax = fig.add_subplot(4, 1, idx + 1, xticks=[], yticks=[])
        ax.imshow(images[idx][0].numpy(), cmap="Greys")
        ax.set_title(f"label {int(labels[idx])}")
    return fig


train_writer = SummaryWriter("runs/exp/train")
val_writer = SummaryWriter("runs/exp/val")

net = Net()
optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
images = torch.rand(16, 1, 28, 28)
labels = torch.randint(0, 10, (16,))

# Images, the graph and the embedding (the tutorial's first steps).
train_writer.add_image("four_fashion_mnist_images", images[:4].mean(0), 0)
train_writer.add_images("my_image_batch", images[:8], 0)
train_writer.add_graph(net, images)
train_writer.add_embedding(
    images.view(-1, 28 * 28), metadata=[str(int(c)) for c in labels], label_img=images
)

# Scalars: the same tags in both writers, as TensorBoard's train/val folders have them.
for n_iter in range(20):
    optimizer.zero_grad()
    loss = F.cross_entropy(net(images), labels)
    loss.backward()
    optimizer.step()
    train_writer.add_scalar("Loss", loss.item(), n_iter)
    val_writer.add_scalar("Loss", loss.item() / 2, n_iter)
    for i, tag in enumerate(TAGS):
        train_writer.add_scalar(tag, n_iter * 0.25 + i, n_iter)
        val_writer.add_scalar(tag, -n_iter * 0.25 - i, n_iter)
    train_writer.add_scalars(
        "run_14h",
        {"xsinx": n_iter * np.sin(n_iter / 4), "xcosx": n_iter * np.cos(n_iter / 4)},
        n_iter,
    )
    if n_iter % 5 == 0:
        train_writer.add_histogram("distribution centers", torch.randn(1000) + n_iter, n_iter)
        train_writer.add_histogram("fc1.weight@grad", net.fc1.weight.grad, n_iter)
        train_writer.add_figure(
            "predictions vs. actuals", plot_classes_preds(images, labels), n_iter
        )

# Text, PR curves, the mesh and the hparams.
train_writer.add_text("lstm", "This is an lstm", 0)
train_writer.add_text("notes (train)", "**bold** text", 1)
probs = F.softmax(net(images), dim=1).detach()
for class_index in range(2):
    truth = labels == class_index
    train_writer.add_pr_curve(f"class {class_index}", truth, probs[:, class_index], global_step=0)
vertices = torch.tensor([[[1, 1, 1], [-1, -1, 1], [1, -1, -1], [-1, 1, -1]]], dtype=torch.float)
colors = torch.tensor([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 0, 255]]], dtype=torch.int)
faces = torch.tensor([[[0, 2, 3], [0, 3, 1], [0, 1, 2], [1, 3, 2]]], dtype=torch.int)
train_writer.add_mesh("my_mesh", vertices=vertices, colors=colors, faces=faces)
for i in range(2):
    train_writer.add_hparams(
        {"lr": 0.1 * i, "bsize": i}, {"hparam/accuracy": 10 * i, "hparam/loss": 10 * i}
    )

train_writer.close()
val_writer.close()
