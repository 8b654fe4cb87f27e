"""HTML for conversations and candidates. Every piece of stored text is escaped here, once.

Prompts and answers are data, not markup: `<script>`, `<img onerror=...>` or a stray `<b>`
must reach the annotator as the characters they are. So text goes through `html.escape`
(quotes included) and is laid out with `white-space: pre-wrap`; no Markdown or HTML rendering
of stored text anywhere in the app.
"""

from __future__ import annotations

import html

from labeling_app.keyboard import KEYBOARD_JS  # noqa: F401  (the page's script: keys, checks before submit, session end)
from rlhf.data.formats import LETTERS  # noqa: F401  (one alphabet for answer labels, shared with the rank checks)

ROLE_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}


def text(s: str) -> str:
    """Stored text as inert HTML."""
    return html.escape(s or "", quote=True)


def conversation(messages: list[dict], title: str = "", item: str = "") -> str:
    """A (multi-turn) prompt as chat bubbles, oldest first; the last one is the message to answer.

    `item` (e.g. "rank:12") tells the keyboard script a new item is on screen (focus and scroll to its top)."""
    parts = [f'<div class="convo" data-turns="{len(messages)}" data-item="{text(item)}" tabindex="-1">']
    if title:
        parts.append(f'<div class="convo-title">{text(title)}</div>')
    for i, m in enumerate(messages):
        role = m.get("role", "user")
        last = " last" if i == len(messages) - 1 else ""
        parts.append(f'<div class="msg msg-{text(role)}{last}"><div class="msg-role">{text(ROLE_LABELS.get(role, role))}</div>'
                     f'<div class="msg-text">{text(m.get("content", ""))}</div></div>')
    parts.append("</div>")
    return "".join(parts)


def candidate(index: int, body: str) -> str:
    """One candidate answer, labelled by letter only (no model name)."""
    return (f'<div class="cand" data-index="{index}"><div class="cand-label">Answer {LETTERS[index]}</div>'
            f'<div class="cand-text">{text(body)}</div></div>')


def notice(message: str) -> str:
    return f'<div class="notice">{text(message)}</div>'


def message(body: str, tone: str = "info") -> str:
    """Feedback next to a control (tone: info | ok | error), as text: a name like `<b>x</b>` shows as typed."""
    if not body:
        return ""
    return f'<div class="app-msg app-msg-{text(tone)}" role="status">{text(body)}</div>'


def progress(kind: str, p, pace=None) -> str:
    """The progress strip: a bar toward the day's goal, items done today, median seconds per item, items left.

    `p`: queue.Progress; `pace`: history.Pace (None: no bar)."""
    noun = "answers" if kind == "write" else "rankings"
    left = f"{p.remaining}+" if p.remaining >= 1000 else str(p.remaining)
    parts = [f"<b>{p.done_today}</b> {noun} today"]
    bar = ""
    if pace is not None:
        parts[0] += f" of a goal of <b>{pace.goal}</b>"
        pct = round(100 * pace.fraction)
        bar = (f'<div class="goal-bar" role="progressbar" aria-valuemin="0" aria-valuemax="{pace.goal}" '
               f'aria-valuenow="{p.done_today}" title="{pct}% of today\'s goal"><span style="width:{pct}%"></span></div>')
        if pace.median_seconds is not None:
            parts.append(f"median <b>{pace.median_seconds:.0f} s</b> per item")
    parts += [f"<b>{p.total}</b> in total", f"<b>{left}</b> left in your queue"]
    return f'<div class="progress" data-kind="{text(kind)}">{bar}<div class="progress-line">{" · ".join(parts)}</div></div>'


# what each page's key-hint line says (hidden on touch screens, where there are no keys); `?` shows them all
KEY_HINTS = {
    "write": "Ctrl+Enter submit · Ctrl+S save draft · Esc leave the text box · Shift+S skip · U undo · "
             "Shift+P previous item · ? all keys",
    "rank": "1-9 rank the next answer (A first) · B all bad · Enter submit · Shift+S skip · U undo · "
            "Shift+P previous item · ? all keys",
    "adjudicate": "1-9 rank the next answer (A first) · Enter record · ? all keys",
}


def key_hints(page: str) -> str:
    return f'<div class="key-hints" id="{page}-keys">Keys: {text(KEY_HINTS[page])}</div>'


CSS = """
.convo { display: flex; flex-direction: column; gap: 8px; outline: none; }
.convo-title { font-size: 12px; opacity: .7; }
.msg { border-radius: 10px; padding: 8px 12px; max-width: 95%; }
.msg-user { background: #e8f0fe; align-self: flex-start; }
.msg-assistant { background: #f1f3f4; align-self: flex-end; }
.msg-system { background: #fff8e1; font-size: 13px; }
.msg.last { border: 2px solid #1a73e8; }
.msg-role { font-size: 11px; font-weight: 600; text-transform: uppercase; opacity: .7; }
.msg-text, .cand-text { white-space: pre-wrap; word-wrap: break-word; font-family: inherit; }
.cand-label { font-weight: 700; margin-bottom: 4px; }
.rank-slot.next-to-rank { outline: 3px solid #1a73e8; border-radius: 8px; }
.rank-slot.needs-rank { outline: 3px dashed #d93025; border-radius: 8px; }
.order-preview { font-weight: 600; min-height: 1.4em; }
.order-preview .missing { color: #d93025; }
.notice { padding: 12px; border-radius: 8px; background: #f1f3f4; }
.app-msg { padding: 6px 10px; border-radius: 6px; margin: 4px 0; }
.app-msg-error { background: #fce8e6; color: #a50e0e; } .app-msg-ok { background: #e6f4ea; color: #137333; }
.app-msg-info { background: #e8f0fe; color: #174ea6; }
.goal-bar { height: 8px; background: #e0e0e0; border-radius: 4px; overflow: hidden; margin: 4px 0; }
.goal-bar span { display: block; height: 100%; background: #1a73e8; }
.progress-line { font-size: 15px; }
.key-hints { font-size: 12px; opacity: .75; }
.feedback { margin-top: 8px; padding: 8px 12px; border-radius: 8px; background: #f1f3f4; }
.feedback-title { font-weight: 600; margin-bottom: 4px; } .feedback th { text-align: left; padding-right: 12px; }
.feedback-agreement { font-size: 13px; margin-top: 4px; opacity: .85; } .dark .feedback { background: #333; }
#session-expired { position: fixed; top: 0; left: 0; right: 0; z-index: 1000; padding: 14px; text-align: center;
  background: #a50e0e; color: #fff; font-size: 17px; } #session-expired a { color: #fff; text-decoration: underline; }
#shortcut-sheet { position: fixed; top: 10%; left: 50%; transform: translateX(-50%); z-index: 999; background: #fff; color: #222;
  border-radius: 10px; box-shadow: 0 8px 30px rgba(0,0,0,.35); padding: 18px 24px; max-width: 92vw; max-height: 80vh; overflow: auto; }
#shortcut-sheet td { padding: 2px 12px 2px 0; } #shortcut-sheet kbd { border: 1px solid #999; border-radius: 3px; padding: 0 4px; }
.dark .msg-user { background: #1e3a5f; } .dark .msg-assistant { background: #333; } .dark .msg-system { background: #4a3f1a; }
/* gradio marks every output of a failed event with a red "Error" badge over it: the one message (inline, or a
   single toast) is enough, so the badges never cover the page */
[data-testid="status-tracker"]:has(.clear-status) { display: none !important; }
body.session-ended [data-testid="toast-body"] { display: none !important; }  /* the banner says it once */
@media (hover: none) and (pointer: coarse) { .key-hints { display: none; } }
@media (max-width: 700px) {
  #rank-prompt { position: sticky; top: 0; z-index: 100; max-height: 32vh; overflow-y: auto;
                 background: var(--background-fill-primary, #fff); box-shadow: 0 2px 6px rgba(0,0,0,.2); }
}
"""
