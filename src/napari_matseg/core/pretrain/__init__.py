"""Self-supervised pretraining of the segmentation model on unlabeled micrographs.

One module per method (its head, its loss, its view sampler): :mod:`.matssl`, :mod:`.pscl`,
:mod:`.sms`; one shared loop (:mod:`.loop`) with budgets, checkpoints and DDP.
"""

from .loop import METHODS, PretrainConfig, PretrainEvent, Pretrainer
from .matssl import GatedFeatureFusion, MatSSLConfig
from .pool import MicrographPool
from .pscl import PSCLConfig
from .sms import SMSConfig

__all__ = ["GatedFeatureFusion", "METHODS", "MatSSLConfig", "MicrographPool", "PSCLConfig",
           "PretrainConfig", "PretrainEvent", "Pretrainer", "SMSConfig"]
