"""HTML for conversations and candidates. Every piece of stored text is escaped here, once.

Prompts and answers are data, not markup: `<script>`, `<img onerror=...>` or a stray `<b>`
must reach the annotator as the characters they are. So text goes through `html.escape`
(quotes included) and is laid out with `white-space: pre-wrap`; no Markdown or HTML rendering
of stored text anywhere in the app.
"""

from __future__ import annotations

import html

from rlhf.data.formats import LETTERS  # noqa: F401  (one alphabet for answer labels, shared with the rank checks)

ROLE_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}


def text(s: str) -> str:
    """Stored text as inert HTML."""
    return html.escape(s or "", quote=True)


def conversation(messages: list[dict], title: str = "") -> str:
    """A (multi-turn) prompt as chat bubbles, oldest first; the last one is the message to answer."""
    parts = [f'<div class="convo" data-turns="{len(messages)}">']
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


CSS = """
.convo { display: flex; flex-direction: column; gap: 8px; }
.convo-title { font-size: 12px; opacity: .7; }
.msg { border-radius: 10px; padding: 8px 12px; max-width: 95%; }
.msg-user { background: #e8f0fe; align-self: flex-start; }
.msg-assistant { background: #f1f3f4; align-self: flex-end; }
.msg-system { background: #fff8e1; font-size: 13px; }
.msg.last { border: 2px solid #1a73e8; }
.msg-role { font-size: 11px; font-weight: 600; text-transform: uppercase; opacity: .7; }
.msg-text, .cand-text { white-space: pre-wrap; word-wrap: break-word; font-family: inherit; }
.cand-label { font-weight: 700; margin-bottom: 4px; }
.cand-slot.next-to-rank { outline: 3px solid #1a73e8; border-radius: 8px; }
#order-preview { font-weight: 600; min-height: 1.4em; }
.notice { padding: 12px; border-radius: 8px; background: #f1f3f4; }
#progress-write, #progress-rank { font-size: 15px; }
.dark .msg-user { background: #1e3a5f; } .dark .msg-assistant { background: #333; } .dark .msg-system { background: #4a3f1a; }
"""

# Keyboard: on Rank, digits give the next unranked (or the clicked) answer its rank, Enter submits,
# S skips; on Write, Ctrl+Enter submits, Ctrl+S saves the draft, S (outside the text box) skips.
# Pure DOM work (clicks on gradio's own radios and buttons), so the server sees ordinary events.
KEYBOARD_JS = """
<script>
(() => {
  const visible = (el) => el && el.offsetParent !== null;
  const q = (sel) => document.querySelector(sel);
  const slots = () => [0, 1, 2, 3, 4, 5, 6, 7, 8].map((i) => document.getElementById('cand-' + i)).filter(visible);
  const ranked = (slot) => !!slot.querySelector('input[type=radio]:checked');
  let picked = null;  // the answer the annotator clicked last, ranked by the next digit
  const target = () => {
    const all = slots();
    if (picked && all.includes(picked)) return picked;
    return all.find((s) => !ranked(s)) || null;
  };
  const highlight = () => {
    const t = target();
    slots().forEach((s) => s.classList.toggle('next-to-rank', s === t));
    const preview = q('#order-preview');
    if (!preview) return;
    const byRank = {}, missing = [];
    slots().forEach((s, i) => {
      const c = s.querySelector('input[type=radio]:checked'), letter = 'ABCDEFGHI'[i];
      if (c) (byRank[c.value] = byRank[c.value] || []).push(letter); else missing.push(letter);
    });
    const order = Object.keys(byRank).sort((a, b) => a - b).map((r) => byRank[r].join(' = ')).join(' > ');
    preview.textContent = slots().length ? ('Your order: ' + (order || '(none yet)') +
      (missing.length ? ' · not ranked yet: ' + missing.join(', ') : '')) : '';
  };
  const click = (sel) => { const b = q(sel); if (b) { b.click(); return true; } return false; };
  document.addEventListener('click', (e) => {
    const slot = slots().find((s) => s.contains(e.target));
    if (slot) { picked = slot; setTimeout(highlight, 0); }
  }, true);
  document.addEventListener('keydown', (e) => {
    const el = e.target, tag = (el.tagName || '').toLowerCase();
    const typing = tag === 'textarea' || (tag === 'input' && !['radio', 'checkbox', 'button'].includes(el.type));
    const onRank = visible(q('#rank-submit')), onWrite = visible(q('#write-submit'));
    if (onWrite && e.ctrlKey && e.key === 'Enter') { e.preventDefault(); click('#write-submit'); return; }
    if (onWrite && e.ctrlKey && (e.key === 's' || e.key === 'S')) { e.preventDefault(); click('#write-draft'); return; }
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    if (onRank && /^[1-9]$/.test(e.key)) {
      const t = target();
      if (!t) return;
      const radio = t.querySelector('input[type=radio][value="' + e.key + '"]');
      if (radio) { e.preventDefault(); radio.click(); picked = null; setTimeout(highlight, 50); }
      return;
    }
    if (e.key === 'Enter' && (onRank || onWrite)) { e.preventDefault(); click(onRank ? '#rank-submit' : '#write-submit'); return; }
    if ((e.key === 's' || e.key === 'S') && (onRank || onWrite)) { e.preventDefault(); click(onRank ? '#rank-skip' : '#write-skip'); return; }
  });
  setInterval(highlight, 400);
})();
</script>
"""
