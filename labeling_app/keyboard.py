"""The page's one script (`KEYBOARD_JS`, in the page head): keys, checks before a submit, the end of a session.

Keys (outside text boxes; `?` shows this sheet on the page):
- Rank and Adjudicate: a digit gives the next answer its rank, starting at answer A on every new
  item (clicking an answer's text makes it the next one); `B` ticks All bad (Rank); Enter submits
  once every answer has a rank (or All bad is ticked); the Submit button stays disabled until then
  and the unranked answers are marked.
- Write: Ctrl+Enter submits, Ctrl+S saves a draft, Esc leaves the text box.
- Both: Shift+S skips (a plain `s` does nothing: one stray key never skips), `U` undoes the last
  submit or skip, Shift+P goes back to the previous item.

It also moves focus and scroll to the top of each new item, warns before a tab with unsaved text
closes, keeps the Rank prompt in view and the guidelines in a closed drawer on small screens, and turns a request refused for want of a login
(a logged-out or expired session) into one clear banner: "session expired, log in again".

Pure DOM work (clicks on gradio's own radios, checkbox and buttons): the server sees ordinary
events and checks everything again. The key listener runs in the capture phase on `window`, before
any component's own handler (gradio's checkbox toggles itself on Enter).
"""

KEYBOARD_JS = r"""
<script>
(() => {
  if (window.__rlhfKeys) return;
  window.__rlhfKeys = true;
  const q = (sel) => document.querySelector(sel);
  const visible = (el) => !!el && el.offsetParent !== null;
  const LETTERS = 'ABCDEFGHI';
  const PAGES = {
    write: {submit: '#write-submit', draft: '#write-draft', skip: '#write-skip', undo: '#write-undo',
            previous: '#write-previous', prompt: '#write-prompt', answer: '#write-answer textarea'},
    rank: {submit: '#rank-submit', skip: '#rank-skip', undo: '#rank-undo', previous: '#rank-previous', slot: 'cand-',
           radio: 'cand-rank-',
           prompt: '#rank-prompt', preview: '#order-preview', allBad: '#rank-all-bad', reason: '#rank-reason'},
    adjudicate: {submit: '#adjudicate-submit', slot: 'adj-cand-', radio: 'adj-rank-', prompt: '#adjudicate-prompt',
                 preview: '#adj-order-preview', reason: '#adjudicate-reason'},
  };
  const SHEET = [
    ['Rank', '1-9', 'give the next answer its rank (every item starts at answer A; equal numbers are a tie)'],
    ['Rank', 'click an answer', 'the next digit ranks that answer'],
    ['Rank', 'B', 'tick or untick All bad'], ['Rank', 'Enter', 'submit (once every answer has a rank, or All bad)'],
    ['Write', 'Ctrl+Enter', 'submit your answer'], ['Write', 'Ctrl+S', 'save a draft'],
    ['Write', 'Esc', 'leave the text box (then the keys below work)'],
    ['Both', 'Shift+S', 'skip this item (your text is kept: Undo brings it back)'],
    ['Both', 'U', 'undo the last submit or skip (for a short while)'], ['Both', 'Shift+P', 'previous item'],
    ['Adjudicate', '1-9, Enter', 'rank the answers and record, as on Rank'], ['', '?', 'show or hide this sheet'],
  ];
  const st = {item: {}, cursor: {}, picked: {}, tried: {}, saved: ''};

  const page = () => Object.keys(PAGES).find((n) => visible(q(PAGES[n].submit))) || null;
  const slots = (n) => {
    const out = [];
    for (let i = 0; i < 9; i++) { const el = document.getElementById(PAGES[n].slot + i); if (visible(el)) out.push(el); }
    return out;
  };
  const rankOf = (slot) => slot.querySelector('input[type=radio]:checked');
  const allBad = (n) => { const b = PAGES[n].allBad && q(PAGES[n].allBad + ' input[type=checkbox]'); return b || null; };
  const itemOf = (n) => { const c = q(PAGES[n].prompt + ' .convo'); return c ? (c.dataset.item || c.textContent.slice(0, 80)) : ''; };
  const click = (sel) => { const b = q(sel); if (visible(b) && !b.disabled) { b.click(); return true; } return false; };
  const typing = (el) => {
    const tag = ((el && el.tagName) || '').toLowerCase();
    return tag === 'textarea' || tag === 'select' || !!(el && el.isContentEditable) ||
      (tag === 'input' && !['radio', 'checkbox', 'button', 'submit'].includes(el.type));
  };

  // the answer the next digit ranks: the clicked one, else the first unranked from the cursor on, else the cursor
  const target = (n) => {
    const s = slots(n);
    if (!s.length) return null;
    if (st.picked[n] && s.includes(st.picked[n])) return st.picked[n];
    const c = (st.cursor[n] || 0) % s.length;
    for (let k = 0; k < s.length; k++) { if (!rankOf(s[(c + k) % s.length])) return s[(c + k) % s.length]; }
    return s[c];
  };
  const ready = (n) => { const s = slots(n), b = allBad(n); return s.length > 0 && (!!(b && b.checked) || s.every(rankOf)); };

  const newItem = (n) => {
    st.cursor[n] = 0; st.picked[n] = null; st.tried[n] = false;
    if (n === 'write') { const ta = q(PAGES.write.answer); st.saved = ta ? ta.value : ''; }
    if (page() !== n) return;
    window.scrollTo(0, 0);
    const focus = n === 'write' ? q(PAGES.write.answer) : q(PAGES[n].prompt + ' .convo');
    if (focus) focus.focus({preventScroll: true});
  };

  const refresh = () => {
    for (const n of Object.keys(PAGES)) {
      const it = itemOf(n);
      if (it !== st.item[n]) { st.item[n] = it; newItem(n); }
    }
    for (const n of ['rank', 'adjudicate']) {
      const s = slots(n), p = PAGES[n], b = allBad(n), bad = !!(b && b.checked), t = target(n);
      const byRank = {}, missing = [];
      const complete = s.every(rankOf);
      s.forEach((el, i) => {
        const r = rankOf(el);
        if (r) (byRank[r.value] = byRank[r.value] || []).push(LETTERS[i]); else missing.push(LETTERS[i]);
        el.classList.add('rank-slot');
        el.classList.toggle('next-to-rank', el === t && !bad && (!complete || el === st.picked[n]));
        el.classList.toggle('needs-rank', !r && !bad && !!st.tried[n]);
      });
      const order = Object.keys(byRank).sort((x, y) => x - y).map((r) => byRank[r].join(' = ')).join(' > ');
      const preview = q(p.preview);
      if (preview) {
        preview.textContent = !s.length ? '' : (bad ? 'All bad' + (order ? ' · your order: ' + order : '') :
          'Your order: ' + (order || '(none yet)') + (missing.length ? ' · not ranked yet: ' + missing.join(', ') : ''));
        preview.classList.toggle('incomplete', !bad && missing.length > 0);
      }
      const submit = q(p.submit);
      if (submit && s.length) submit.disabled = !ready(n);
    }
    if (window.matchMedia('(max-width: 700px)').matches) {  // phones: each page's guidelines start in a closed drawer
      const root = q('.gradio-container');  // its overflow:hidden makes it a scroll box: the sticky prompt needs clip
      if (root && root.style.overflow !== 'clip') root.style.overflow = 'clip';
      document.querySelectorAll('.guidelines-drawer').forEach((d) => {
        const toggle = d.querySelector('.label-wrap');
        if (!toggle || d.dataset.phoneClosed) return;
        d.dataset.phoneClosed = '1';
        if (toggle.classList.contains('open')) toggle.click();
      });
    }
  };

  const sheet = () => {
    let el = document.getElementById('shortcut-sheet');
    if (el) { el.remove(); return; }
    el = document.createElement('div');
    el.id = 'shortcut-sheet'; el.setAttribute('role', 'dialog'); el.setAttribute('aria-label', 'Keyboard shortcuts');
    const h = document.createElement('h3'); h.textContent = 'Keyboard shortcuts (Esc or ? closes)'; el.appendChild(h);
    const table = document.createElement('table');
    for (const [where, key, what] of SHEET) {
      const tr = table.insertRow();
      tr.insertCell().textContent = where;
      const kbd = document.createElement('kbd'); kbd.textContent = key; tr.insertCell().appendChild(kbd);
      tr.insertCell().textContent = what;
    }
    el.appendChild(table);
    document.body.appendChild(el);
  };

  const rankKey = (n, e) => {
    if (/^[1-9]$/.test(e.key) && !e.shiftKey) {
      const s = slots(n), t = target(n);
      if (!t) return false;
      const radio = t.querySelector('input[type=radio][value="' + e.key + '"]');
      if (radio) { radio.click(); st.picked[n] = null; st.cursor[n] = (s.indexOf(t) + 1) % s.length; setTimeout(refresh, 30); }
      return true;
    }
    if (n === 'rank' && (e.key === 'b' || e.key === 'B') && !e.shiftKey) { const b = allBad(n); if (b) b.click(); setTimeout(refresh, 30); return true; }
    if (e.key === 'Enter') {
      if (ready(n)) click(PAGES[n].submit);
      else { st.tried[n] = true; refresh(); }
      return true;
    }
    return false;
  };

  window.addEventListener('keydown', (e) => {
    const n = page();
    refresh();
    if (e.key === 'Escape') {
      const open = document.getElementById('shortcut-sheet');
      if (open) { open.remove(); return; }
      const active = document.activeElement;  // not e.target: a new item may just have moved the focus
      if (typing(active)) { active.blur(); return; }
    }
    if (!n) return;
    const p = PAGES[n], el = e.target, ctrl = e.ctrlKey || e.metaKey;
    const inReason = !!(p.reason && el && el.closest && el.closest(p.reason));  // a one-line box: Enter submits
    let done = false;
    if (ctrl && e.key === 'Enter') done = click(p.submit) || true;
    else if (n === 'write' && ctrl && (e.key === 's' || e.key === 'S')) done = click(p.draft) || true;
    else if (n !== 'write' && e.key === 'Enter' && !ctrl && !e.altKey && (inReason || !typing(el))) done = rankKey(n, e);
    else if (typing(el) || ctrl || e.altKey) return;
    else if (e.key === '?') { sheet(); done = true; }
    else if (e.key === 'S' && e.shiftKey && p.skip) done = click(p.skip) || true;
    else if ((e.key === 'u' || e.key === 'U') && !e.shiftKey && p.undo) done = click(p.undo) || true;
    else if (e.key === 'P' && e.shiftKey && p.previous) done = click(p.previous) || true;
    else if (n !== 'write') done = rankKey(n, e);
    if (done) { e.preventDefault(); e.stopPropagation(); }
  }, true);

  document.addEventListener('click', (e) => {
    for (const n of ['rank', 'adjudicate']) {
      const slot = slots(n).find((s) => s.contains(e.target));
      if (!slot) continue;
      const onRadio = !!(e.target.closest && e.target.closest('[id^="' + PAGES[n].radio + '"]'));
      st.picked[n] = onRadio ? null : slot;  // a click on an answer's text picks it for the next digit
      setTimeout(refresh, 30);
    }
    if (e.target.closest && e.target.closest('#write-draft, #write-skip')) {
      const ta = q(PAGES.write.answer); st.saved = ta ? ta.value : '';
    }
  }, true);

  window.addEventListener('beforeunload', (e) => {  // unsaved text in the Write box: ask before the tab closes
    const ta = q(PAGES.write.answer);
    if (ta && ta.value.trim() && ta.value !== st.saved) { e.preventDefault(); e.returnValue = ''; }
  });

  const expired = () => {
    if (document.getElementById('session-expired')) return;
    const bar = document.createElement('div');
    bar.id = 'session-expired'; bar.setAttribute('role', 'alert');
    bar.append('Your session has expired or you logged out: ');
    const a = document.createElement('a'); a.href = '/'; a.textContent = 'log in again'; bar.append(a);
    bar.append(' (your drafts are kept).');
    document.body.appendChild(bar);
    document.body.classList.add('session-ended');
  };
  window.rlhfSessionExpired = expired;
  const fetch0 = window.fetch.bind(window);
  window.fetch = async (...args) => {
    const r = await fetch0(...args);
    const url = String((args[0] && args[0].url) || args[0] || '');
    if ((r.status === 401 || r.status === 403) && url.includes('/gradio_api/')) expired();
    return r;
  };
  const observer = new MutationObserver(() => {  // an error toast that says a login is missing means the same
    document.querySelectorAll('.toast-body').forEach((t) => {
      if (/log in again|not logged in|Not authenticated/i.test(t.textContent)) expired();
    });
  });
  document.addEventListener('DOMContentLoaded', () => observer.observe(document.body, {childList: true, subtree: true}));
  setInterval(refresh, 250);
})();
</script>
"""
