"""The dashboard's plots read cleanly: no legend or label on a title or on the data (issue 17)."""

from __future__ import annotations

import random

import pytest

from rlhf.review import agreement, reports
from rlhf.review.agreement import RankingRecord


def _report(names: list[str], items: int, id_len: int) -> agreement.AgreementReport:
    rng, recs = random.Random(1), []
    for p in range(items):
        for a in names:
            ids, perm = tuple(range(p * 10, p * 10 + 4)), [0, 1, 2, 3]
            rng.shuffle(perm)
            recs.append(RankingRecord(len(recs) + 1, p, a, ids, tuple((i,) for i in perm), ids,
                                      {i: rng.randint(10, 300) for i in ids}))
    return agreement.compute(recs, 0.5, {}, {}, {p: ("q" * id_len + str(p), []) for p in range(items)})


@pytest.mark.parametrize("names, items, id_len", [(["ana", "bob"], 1, 3), (["ana", "bob", "cy", "dan"], 12, 40),
                                                  (["an-annotator-with-a-long-name", "rubric:concise_helpful"], 5, 10)])
def test_agreement_plot_keeps_titles_and_data_uncovered(monkeypatch, tmp_path, names, items, id_len):
    seen = []

    def check(fig, path):
        fig.canvas.draw()
        r = fig.canvas.get_renderer()
        titles = [ax.title.get_window_extent(r) for ax in fig.axes]
        for ax in fig.axes:
            legend = ax.get_legend()
            boxes = [t.get_window_extent(r) for t in ax.get_xticklabels() + ax.get_yticklabels() if t.get_text()]
            if legend is not None:
                box = legend.get_window_extent(r)
                assert not any(box.overlaps(p.get_window_extent(r)) for p in ax.patches), "a legend covers bars"
                boxes.append(box)
            assert not any(b.overlaps(t) for b in boxes for t in titles), "a label covers a title"
        seen.append(fig)
        return reports.Path(path)

    monkeypatch.setattr(reports, "_save", check)
    reports.agreement_plot(_report(names, items, id_len), tmp_path / "a.png")
    assert seen


def test_the_app_shows_plots_under_a_heading_not_under_a_label_badge():
    import gradio as gr

    from labeling_app.app import build_ui

    images = [b for b in build_ui().blocks.values() if isinstance(b, gr.Image)]
    assert images and all(not img.show_label for img in images)
