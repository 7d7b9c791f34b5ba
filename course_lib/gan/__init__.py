"""GANs: the step (Algorithm 1), its objectives, the models, the stabilization tricks.

- :mod:`~course_lib.gan.step`: :class:`GANStep`, one D:G update, the algorithm in one screen.
- :mod:`~course_lib.gan.trainer`: :class:`GANTrainer`, a Trainer of a GANStep with Adam.
- :mod:`~course_lib.gan.losses`: NS-GAN, WGAN (-GP), LSGAN, hinge, R1 as :class:`GANLoss` pairs.
- :mod:`~course_lib.gan.models`: MLP and DCGAN generators and discriminators, DCGAN init.
- :mod:`~course_lib.gan.tricks`: init schemes, spectral norm, label smoothing, instance noise,
  DiffAugment, TTUR, EMA of G, gradient norms.

Notebooks write ``from course_lib.gan import GANTrainer, losses, models, tricks``.
"""

from course_lib.gan.losses import LOSSES, GANLoss, get_loss
from course_lib.gan.step import LOSS_KEYS, GANStep
from course_lib.gan.trainer import GANTrainer

__all__ = ["LOSSES", "LOSS_KEYS", "GANLoss", "GANStep", "GANTrainer", "get_loss"]
