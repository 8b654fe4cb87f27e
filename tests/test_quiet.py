"""rlhf.quiet: the known-harmless library notices are hidden, and nothing else is."""

from __future__ import annotations

import logging
import warnings

from rlhf.quiet import FreshHeadReport, quiet


class Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_library_deprecation_of_is_gradient_checkpointing_is_hidden_others_stay(tiny_model):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        quiet()
        quiet()  # idempotent
        assert model.is_gradient_checkpointing is False  # what peft and trl read
        warnings.warn("some other deprecation", FutureWarning)
    assert [str(w.message) for w in seen] == ["some other deprecation"]


def test_load_report_of_a_fresh_reward_head_is_hidden_other_reports_stay(tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    quiet()
    logger = logging.getLogger("transformers.modeling_utils")
    assert sum(isinstance(f, FreshHeadReport) for f in logger.filters) == 1
    seen = Records()
    logger.addHandler(seen)
    try:
        rm = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=1)  # score.weight: new on purpose
        assert seen.messages == []
        rm.save_pretrained(tmp_path / "rm")
        AutoModelForCausalLM.from_pretrained(tmp_path / "rm")  # score.weight UNEXPECTED: a report a user should read
        assert len(seen.messages) == 1 and "LOAD REPORT" in seen.messages[0] and "UNEXPECTED" in seen.messages[0]
    finally:
        logger.removeHandler(seen)
