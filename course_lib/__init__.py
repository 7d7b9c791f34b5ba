"""course_lib: the shared library of the GAN and VAE course.

Modules (import the ones you need; nothing runs at import time):
``runtime`` (device, seeds, run profile), ``data`` (offline datasets, downloads with clear errors),
``models``, ``losses``, ``train`` (GAN trainer with checkpoint/resume), ``metrics`` (FID, KID,
coverage), ``viz`` (figures), ``check`` (exercise feedback).
"""

__version__ = "0.1.0"
