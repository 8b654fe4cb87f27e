"""K candidate answers, each above a rank radio: laid out once as MAX_SLOTS hidden slots, filled per item.

The Rank page (annotators) and the Adjudicate page (experts) both show an item this way; the
browser tests and the keyboard script (`keyboard.py`) find the slots by their elem_ids, which each
page names. A slot is a `gr.Column`, not a `gr.Group`: gradio 6 writes a Group's elem_id on two
nested elements, so every slot id appeared twice in the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gradio as gr

from labeling_app.render import LETTERS

MAX_SLOTS = len(LETTERS)  # slots laid out; an item uses its first K (K <= 9 candidates in the app)


@dataclass
class RankSlots:
    groups: list = field(default_factory=list)  # one gr.Column a slot: hidden unless the item has that many answers
    htmls: list = field(default_factory=list)  # the answer's escaped HTML (render.candidate)
    radios: list = field(default_factory=list)  # its rank, "1".."K"; equal ranks are a tie

    @classmethod
    def layout(cls, group_id: str, radio_id: str, label: str, text_id: str | None = None,
               classes: list[str] | None = None) -> RankSlots:
        """The slots, in the enclosing gradio block. Ids are templates over the slot index `{i}`, the radio's
        label over the answer's `{letter}`."""
        slots = cls()
        for i in range(MAX_SLOTS):
            with gr.Column(visible=False, elem_id=group_id.format(i=i), elem_classes=["rank-slot", *(classes or [])],
                           variant="panel") as group:
                slots.htmls.append(gr.HTML(elem_id=text_id.format(i=i) if text_id else None))
                slots.radios.append(gr.Radio(choices=[], label=label.format(letter=LETTERS[i]),
                                             elem_id=radio_id.format(i=i)))
            slots.groups.append(group)
        return slots

    @property
    def components(self) -> list:
        """Outputs in the order `show` returns their values: groups, texts, radios."""
        return [*self.groups, *self.htmls, *self.radios]

    @staticmethod
    def show(candidate_html: list[str], ranks: list | None = None) -> list:
        """Values for `components`: the first K slots show these answers with ranks 1..K, chosen as `ranks` gives
        (a correction shows the earlier ranking; default none); the rest hide."""
        k = len(candidate_html)
        choices = [str(r) for r in range(1, k + 1)]
        ranks = list(ranks or []) + [None] * k
        return ([gr.update(visible=i < k) for i in range(MAX_SLOTS)]
                + [candidate_html[i] if i < k else "" for i in range(MAX_SLOTS)]
                + [gr.update(choices=choices if i < k else [], value=ranks[i] if i < k else None) for i in range(MAX_SLOTS)])
