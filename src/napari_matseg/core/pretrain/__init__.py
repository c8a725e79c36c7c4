"""Self-supervised pretraining of the segmentation model on unlabeled micrographs.

One module per method (its head, its loss, its view sampler), each registered in
:mod:`.registry`: :mod:`.matssl`, :mod:`.pscl`, :mod:`.sms`; one shared loop (:mod:`.loop`)
with budgets, checkpoints and DDP.
"""

from .loop import PretrainConfig, PretrainEvent, Pretrainer
from .matssl import GatedFeatureFusion, MatSSLConfig
from .pool import MicrographPool
from .pscl import PSCLConfig
from .registry import MethodSpec, method_spec, methods, register_method
from .sms import SMSConfig

__all__ = ["GatedFeatureFusion", "MatSSLConfig", "MethodSpec", "MicrographPool", "PSCLConfig",
           "PretrainConfig", "PretrainEvent", "Pretrainer", "SMSConfig", "method_spec", "methods",
           "register_method"]
