"""rlhf.review: what experts do with the data and the models. Imports rlhf.data and rlhf.train.

- `actions`     the review queue and its actions: approve, reject with a reason, edit, adjudicate
- `agreement`   inter-annotator agreement on rankings (numbers and store reads)
- `ab`          blind A/B review sessions of two model versions (sessions, judging, tallies)
- `reports`     text, markdown and plots of the agreement and A/B numbers
"""
