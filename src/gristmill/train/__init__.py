"""Training: MLM pretraining loop, masking, checkpoints, task-adaptive pretraining, few-label fine-tuning.

The names below are imported on first use (``gristmill.lazy``), so ``import gristmill.train`` loads no torch.
Prediction with a fine-tuned model is ``gristmill.serve``'s (``Classifier``, ``Tagger``). The verbs' functions
share their module's name (``gristmill.train.pretrain.pretrain``, ``.adapt.adapt``, ``.finetune.finetune``), so
they are imported from their modules: a package attribute of that name is the module.
"""

from gristmill.lazy import lazy_exports

_EXPORTS = {  # public name -> the module that defines it
    "PretrainConfig": "gristmill.train.pretrain", "PretrainError": "gristmill.train.pretrain",
    "PretrainResult": "gristmill.train.pretrain",
    "AdaptConfig": "gristmill.train.adapt", "AdaptError": "gristmill.train.adapt",
    "FineTuneConfig": "gristmill.train.finetune", "FineTuneError": "gristmill.train.finetuned",
    "FineTuned": "gristmill.train.finetuned", "load_finetuned": "gristmill.train.finetuned",
    "TaskData": "gristmill.train.tasks", "TaskError": "gristmill.train.tasks", "TaskSpec": "gristmill.train.tasks",
    "load_task": "gristmill.train.tasks",
    "run_curve": "gristmill.train.curve",
    "CheckpointError": "gristmill.train.checkpoint", "load_decoder_run": "gristmill.train.checkpoint",
    "load_run": "gristmill.train.checkpoint",
    "tfidf_logreg": "gristmill.train.baseline", "tfidf_scores": "gristmill.train.baseline",
    "batched_logits": "gristmill.train.forward",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
