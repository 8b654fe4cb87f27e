"""Per-browser-session state: small, and never the source of truth.

Who the caller is comes from gradio's login (`gr.Request.username`) or the API token on every
call, never from here. What is stored is what this tab has on screen: the assignment ids act as
submission tokens (a submit names the item it answers, so a second tab or a double click lands
on the same assignment and is recognised as a duplicate), the item each page finished last (what
Undo brings back), and the guideline versions this tab has shown (a change gets a notice).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class UserSession:
    username: str = ""  # set from the request on every call
    write_assignment: int | None = None  # the Write item on this tab's screen
    rank_assignment: int | None = None  # the Rank item on this tab's screen
    last_write: int | None = None  # the Write item this tab finished last (Undo)
    last_rank: int | None = None  # the Rank item this tab finished last (Undo)
    guidelines_seen: dict = field(default_factory=dict)  # page -> guidelines version shown on this tab
