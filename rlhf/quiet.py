"""The one place known-harmless third-party notices are kept off the terminal.

`quiet()` is called by the `rlhf` command (`rlhf.cli.main`) and by every stage (`rlhf.train.stage.start`)
before they load models. Each filter below says which library prints what, why a user cannot act on it,
and is as narrow as the notice: a library's other warnings, our own messages and progress bars stay.
When a library stops printing one, drop its filter (tests/test_quiet.py
checks that each still hides its notice and nothing else).
"""

from __future__ import annotations

import logging
import warnings

WARNING_FILTERS: tuple[tuple[str, type[Warning], str], ...] = (
    # peft (PeftModel.__init__) and trl (models.utils) read `model.is_gradient_checkpointing`, which transformers 5.23
    # renamed to `is_activation_checkpointing`; our code uses the new name, the libraries will follow.
    (r"`is_gradient_checkpointing` is deprecated", FutureWarning, ""),
)
"""(message regex, category, module regex) of warnings to ignore"""

FRESH_HEADS = ("score.",)
"""weights a reward model or critic gets new on purpose (a sequence-classification head on a causal LM)"""


class FreshHeadReport(logging.Filter):
    """Drops transformers' LOAD REPORT when the only thing it reports is a freshly initialized reward/value head.

    Turning a causal LM into a reward model or critic adds a `score` head; transformers reports it as MISSING
    ("newly initialized ... Consider training on your downstream task"), which is exactly what the RM stage
    and the PPO critic then do. A report naming any other key (unexpected, mismatched, or another missing
    weight) is kept: that one a user should read.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if "LOAD REPORT" not in msg:
            return True
        rows = [[cell.strip() for cell in line.split("|")] for line in msg.splitlines() if "|" in line]
        rows = [r for r in rows if len(r) >= 2 and r[0] and r[0] != "Key" and not set(r[0]) <= set("-+")]
        return not rows or not all(r[1] == "MISSING" and r[0].startswith(FRESH_HEADS) for r in rows)


def quiet() -> None:
    """Install the filters above (idempotent); imports no third-party library."""
    for message, category, module in WARNING_FILTERS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)  # a repeat replaces itself
    # transformers logs the load report through the logger of modeling_utils (utils/loading_report.py)
    logger = logging.getLogger("transformers.modeling_utils")
    if not any(isinstance(f, FreshHeadReport) for f in logger.filters):
        logger.addFilter(FreshHeadReport())
