"""Knowledge distillation (Hinton et al. 2015) from a teacher run into the student.

The student minimises ``(1 - alpha) * CE(y, student) + alpha * T^2 * KL(p_t || p_s)`` with
``p = softmax(logits / T)``; the T^2 keeps the soft term's gradients on the scale of the hard
term's. The teacher is loaded from ``method.teacher`` (a run directory or checkpoint), stays
in eval mode and runs without gradients; it must know exactly the student's classes.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from imgcls.base.checkpoint import inference_state
from imgcls.base.errors import UserError, one_line
from imgcls.config.options.methods import DistillOptions
from imgcls.config.values import without_weight_sources
from imgcls.data.splits import DataSplits
from imgcls.registry import METHODS, MODELS
from imgcls.transfer.methods import Method
from imgcls.transfer.sources import load_source


def distillation_terms(
    student: Tensor,
    teacher: Tensor,
    labels: Tensor,
    temperature: float,
    label_smoothing: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """The hard cross-entropy and the soft term ``T^2 * KL(p_teacher || p_student)``."""
    hard = F.cross_entropy(student, labels, label_smoothing=label_smoothing)
    soft = F.kl_div(
        F.log_softmax(student / temperature, dim=1),
        F.log_softmax(teacher / temperature, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    return hard, temperature**2 * soft


class Distill(Method):
    name = "distill"

    def __init__(
        self, teacher: nn.Module, temperature: float, alpha: float, label_smoothing: float
    ) -> None:
        self.teacher = teacher.eval().requires_grad_(False)
        self.temperature = temperature
        self.alpha = alpha
        self.label_smoothing = label_smoothing

    def step_loss(
        self, model: nn.Module, images: Tensor, labels: Tensor
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        with torch.no_grad():
            self.teacher.eval()
            teacher_logits = self.teacher(images).float()
        logits = model(images)
        hard, soft = distillation_terms(
            logits.float(), teacher_logits, labels, self.temperature, self.label_smoothing
        )
        loss = (1.0 - self.alpha) * hard + self.alpha * soft
        return loss, logits, {"ce_loss": hard.detach(), "distill_kl": soft.detach()}


def load_teacher(source: str, data: DataSplits, device: torch.device) -> nn.Module:
    """Rebuild the teacher's model from its checkpoint's config and load its weights."""
    path, state = load_source(source, "method.teacher")
    classes = state.get("classes")
    if classes is None or list(classes) != list(data.classes):
        raise UserError(
            f"method.teacher={source} was trained on classes {classes}; this run's dataset "
            f"{data.name} has {list(data.classes)}: a teacher must know the same classes"
        )
    config = state.get("config") or {}
    model_cfg = dict(config.get("model") or {})
    name = model_cfg.pop("name", None)
    if not name:
        raise UserError(f"method.teacher={source}: {path} does not say which model it holds")
    teacher = MODELS.build(
        str(name),
        without_weight_sources(model_cfg),
        prefix="method.teacher model",
        num_classes=len(classes),
        in_channels=data.channels,
        image_size=data.image_size,
    )
    try:
        teacher.load_state_dict(inference_state(state))
    except RuntimeError as error:
        first = one_line(error, first_line=True)
        raise UserError(
            f"method.teacher={source}: its weights do not fit {name} on {data.name} ({first})"
        ) from error
    return teacher.to(device)


@METHODS.register("distill", DistillOptions)
def distill(
    options: DistillOptions, data: DataSplits, device: torch.device, label_smoothing: float
) -> Distill:
    """Distillation from ``options.teacher`` (required here, when the method is built)."""
    if not options.teacher:
        raise UserError("method=distill needs a teacher: teacher=<run dir | checkpoint.pt>")
    teacher = load_teacher(str(options.teacher), data, device)
    return Distill(teacher, options.temperature, options.alpha, label_smoothing)
